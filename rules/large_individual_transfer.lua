-- large_individual_transfer (orange): 向个人账户大额转账.
--
-- Fires when payee_type is "individual" and amount > params.limit (fen,
-- default 50,000 yuan); exactly the limit does not fire.
return {
  id = "large_individual_transfer",
  name = "向个人账户大额转账",
  level = "orange",
  on = { "voucher.created" },
  params = { limit = 5000000 },
  when = { payee_type = "individual", amount = { gt = "limit" } },
  description = "收款人为个人且金额超过限额（默认 50000 元）。",
  check = function(v, ctx)
    if v.payee_type ~= "individual" or v.amount <= ctx.params.limit then
      return nil
    end
    return {
      message = ("向个人账户转账 %s 元超过限额 %s 元（收款人 %s）"):format(ctx.yuan(v.amount),
        ctx.yuan(ctx.params.limit), v.payee_name or ""),
      details = { amount = v.amount, limit = ctx.params.limit },
    }
  end,
}
