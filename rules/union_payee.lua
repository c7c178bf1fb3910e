-- union_payee (yellow): 向工会大额支付.
--
-- Fires when payee_name contains params.word (default 工会) and amount >
-- params.min (fen, default 10,000 yuan).
return {
  id = "union_payee",
  name = "向工会大额支付",
  level = "yellow",
  on = { "voucher.created" },
  params = { word = "工会", min = 1000000 },
  when = { amount = { gt = "min" } },
  description = "收款人名称含“工会”且金额超过门槛（默认 10000 元）。",
  check = function(v, ctx)
    if v.amount <= ctx.params.min or not ctx.contains(v.payee_name or "", ctx.params.word) then
      return nil
    end
    return {
      message = ("向工会（%s）支付 %s 元，超过 %s 元"):format(v.payee_name, ctx.yuan(v.amount),
        ctx.yuan(ctx.params.min)),
      details = { amount = v.amount, min = ctx.params.min },
    }
  end,
}
