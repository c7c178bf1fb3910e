-- reimburse_large (blue): 大额公务卡报销.
--
-- Fires when a single reimbursement's amount > params.min (fen, default
-- 20,000 yuan); exactly the minimum does not fire.
return {
  id = "reimburse_large",
  name = "大额公务卡报销",
  level = "blue",
  on = { "reimburse" },
  params = { min = 2000000 },
  description = "单笔公务卡报销金额超过门槛（默认 20000 元）。",
  check = function(v, ctx)
    if v.amount <= ctx.params.min then
      return nil
    end
    return {
      message = ("%s（%s）公务卡报销 %s 元超过 %s 元（%s）"):format(v.name or "", v.emp_id or "",
        ctx.yuan(v.amount), ctx.yuan(ctx.params.min), v.summary or ""),
      details = { amount = v.amount, min = ctx.params.min },
    }
  end,
}
