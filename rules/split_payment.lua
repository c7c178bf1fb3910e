-- split_payment (yellow): 疑似化整为零（拆分支付）.
--
-- On a voucher below params.limit (L): the unit's spend to the same
-- payee_account within params.days days before it (created_at >= now -
-- days*24h, inclusive), counting only vouchers each below L, plus this
-- voucher, is >= params.count payments and >= L in total.  A voucher of L or
-- more is not a split.  Spend per rules.md: cancelled or returned vouchers
-- do not count.  The hit names the voucher that completes the pattern.
-- The criteria table is made once and refilled on each call (as
-- duplicate_payment's).
local q = {}

return {
  id = "split_payment",
  name = "疑似化整为零",
  level = "yellow",
  on = { "voucher.created" },
  params = { count = 3, days = 7, limit = 5000000 },
  when = { amount = { lt = "limit" } },
  description = "同一单位在 d 天内向同一收款账户支付不少于 n 笔、每笔低于 L、合计不低于 L（默认 3 笔、7 天、50000 元）。",
  check = function(v, ctx)
    local p = ctx.params
    if v.amount >= p.limit or v.payee_account == nil or v.payee_account == "" then
      return nil
    end
    local now = ctx.now()
    q.unit, q.payee_account, q.amount_below = v.unit_code, v.payee_account, p.limit
    q.since, q["until"], q.exclude_voucher = now - p.days * 86400, now, v.voucher_no
    local h = ctx.history(q)
    local count, total = h.count + 1, h.total + v.amount
    if count < p.count or total < p.limit then
      return nil
    end
    return {
      message = ("%d 天内向同一账户（%s）支付 %d 笔，每笔低于 %s 元，合计 %s 元（含本笔 %s 元），疑似化整为零"):format(
        p.days, v.payee_name or "", count, ctx.yuan(p.limit), ctx.yuan(total), ctx.yuan(v.amount)),
      details = { amount = v.amount, count = count, total = total, limit = p.limit,
                  days = p.days, min_count = p.count },
    }
  end,
}
