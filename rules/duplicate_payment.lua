-- duplicate_payment (orange): 疑似重复支付.
--
-- Fires when ANOTHER voucher (not this voucher_no) of the same unit paid the
-- same payee_account the same amount within params.days days of this one
-- (|created_at difference| <= days*24h, inclusive).  Spend per rules.md: a
-- cancelled or returned earlier voucher is not a duplicate.
-- The criteria table is made once and refilled on each call: ctx.history
-- reads it during the call and keeps nothing, and a fresh table per voucher
-- was one of the evaluation's allocations.
local q = {}

return {
  id = "duplicate_payment",
  name = "疑似重复支付",
  level = "orange",
  on = { "voucher.created" },
  params = { days = 3 },
  description = "同一单位在 d 天内（默认 3 天）以另一张凭证向同一收款账户支付相同金额。",
  check = function(v, ctx)
    if v.payee_account == nil or v.payee_account == "" then
      return nil
    end
    local now, span = ctx.now(), ctx.params.days * 86400
    q.unit, q.payee_account, q.amount = v.unit_code, v.payee_account, v.amount
    q.since, q["until"], q.exclude_voucher = now - span, now + span, v.voucher_no
    local h = ctx.history(q)
    if h.count < 1 then
      return nil
    end
    return {
      message = ("%d 天内已有 %d 张凭证向同一账户（%s）支付相同金额 %s 元，疑似重复支付"):format(
        ctx.params.days, h.count, v.payee_name or "", ctx.yuan(v.amount)),
      details = { amount = v.amount, count = h.count, days = ctx.params.days },
    }
  end,
}
