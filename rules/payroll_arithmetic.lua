-- payroll_arithmetic (yellow): 工资明细计算不符.
--
-- Fires when gross ~= sum of earnings, or net ~= gross - sum of deductions
-- (all in fen).  Both differences go into one hit.  (The pipeline also
-- withholds this line's SMS; that is not the rule's doing.)
local function sum(items)
  local s = 0
  for _, it in ipairs(items or {}) do s = s + (it.amount or 0) end
  return s
end

return {
  id = "payroll_arithmetic",
  name = "工资明细计算不符",
  level = "yellow",
  on = { "payroll.line" },
  params = {},
  description = "应发工资不等于各收入项之和，或实发工资不等于应发减各扣款项之和。",
  check = function(v, ctx)
    local earn, ded = sum(v.earnings), sum(v.deductions)
    local expect_net = v.gross - ded
    local bad = {}
    if v.gross ~= earn then
      bad[#bad + 1] = ("应发 %s 元不等于收入项合计 %s 元"):format(ctx.yuan(v.gross), ctx.yuan(earn))
    end
    if v.net ~= expect_net then
      bad[#bad + 1] = ("实发 %s 元不等于应发 %s 元减扣款合计 %s 元（%s 元）"):format(
        ctx.yuan(v.net), ctx.yuan(v.gross), ctx.yuan(ded), ctx.yuan(expect_net))
    end
    if #bad == 0 then
      return nil
    end
    return {
      message = ("%s（%s）工资明细：%s"):format(v.name or "", v.emp_id or "", table.concat(bad, "；")),
      details = { gross = v.gross, earnings_total = earn, net = v.net, deductions_total = ded,
                  expected_net = expect_net },
    }
  end,
}
