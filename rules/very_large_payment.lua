-- very_large_payment (yellow): 超大额支付.
--
-- Fires when amount > params.limit (fen, default 10,000,000 yuan).
return {
  id = "very_large_payment",
  name = "超大额支付",
  level = "yellow",
  on = { "voucher.created" },
  params = { limit = 1000000000 },
  when = { amount = { gt = "limit" } },
  description = "单笔支付金额超过限额（默认 1000 万元）。",
  check = function(v, ctx)
    if v.amount <= ctx.params.limit then
      return nil
    end
    return {
      message = ("单笔支付 %s 元超过大额限额 %s 元"):format(ctx.yuan(v.amount),
        ctx.yuan(ctx.params.limit)),
      details = { amount = v.amount, limit = ctx.params.limit },
    }
  end,
}
