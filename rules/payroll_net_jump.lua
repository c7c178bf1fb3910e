-- payroll_net_jump (orange): 实发工资较上期异常增长.
--
-- The person's previous period is the latest earlier period in which that
-- id_no was paid, in ANY unit (ctx.employee(id_no, period)[1]).  Fires when
-- net - previous net > params.min (fen, default 2,000 yuan) AND
-- (net - previous net) * 100 > params.share_pct * previous net (integer
-- percent, default 30).  No previous period: no hit.
return {
  id = "payroll_net_jump",
  name = "实发工资异常增长",
  level = "orange",
  on = { "payroll.line" },
  params = { share_pct = 30, min = 200000 },
  description = "实发工资比本人上一期（任何单位）增长超过比例（默认 30%）且超过金额（默认 2000 元）。",
  check = function(v, ctx)
    local period = ctx.run and ctx.run.period
    if period == nil or v.id_no == nil then
      return nil
    end
    local prev = ctx.employee(v.id_no, period)
    prev = prev and prev[1]
    if prev == nil then
      return nil
    end
    local p = ctx.params
    local up = v.net - prev.net
    if up <= p.min or up * 100 <= p.share_pct * prev.net then
      return nil
    end
    local unit_note = ""
    if prev.unit_code ~= ctx.run.unit_code then
      unit_note = ("（上期在单位 %s）"):format(prev.unit_code)
    end
    return {
      message = ("%s（%s）%s 期实发 %s 元，比上期 %s%s 实发 %s 元增加 %s 元，超过 %d%% 且超过 %s 元"):format(
        v.name or "", v.emp_id or "", period, ctx.yuan(v.net), prev.period, unit_note,
        ctx.yuan(prev.net), ctx.yuan(up), p.share_pct, ctx.yuan(p.min)),
      details = { net = v.net, previous_net = prev.net, increase = up, share_pct = p.share_pct,
                  min = p.min },
    }
  end,
}
