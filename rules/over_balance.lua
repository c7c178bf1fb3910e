-- over_balance (red): 支付金额超过指标可用余额.
--
-- Reading: the voucher amount is compared with the indicator's `available`
-- as it stands before this voucher is frozen (rules see the pre-state), so
-- "amount > available" is exactly "this voucher takes the indicator below
-- zero".  A voucher for an unknown indicator is left to unknown_indicator.
-- The same call serves the pre-payment check (contract §3).
return {
  id = "over_balance",
  name = "超指标可用余额支付",
  level = "red",
  on = { "voucher.created" },
  params = {},
  description = "支付金额大于指标可用余额（冻结本凭证之前）。",
  check = function(v, ctx)
    local ind = ctx.indicator(v.indicator_id)
    if ind == nil or v.amount <= ind.available then
      return nil
    end
    return {
      message = ("支付金额 %s 元超过指标可用余额 %s 元"):format(ctx.yuan(v.amount),
        ctx.yuan(ind.available)),
      details = {
        amount = v.amount,
        available = ind.available,
        allocated = ind.allocated,
        frozen = ind.frozen,
        paid = ind.paid,
        shortfall = v.amount - ind.available,
      },
    }
  end,
}
