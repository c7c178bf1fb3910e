-- cash_over_limit (orange): 现金支付超限额.
--
-- Fires for settle_method "cash" when the amount > params.single_limit, or
-- when the unit's cash spend in this calendar month (business zone, from the
-- 1st 00:00 to this voucher), including this voucher, > params.monthly_limit.
-- Spend follows rules.md (cancelled/returned vouchers do not count).
-- One hit per voucher: the single-limit case (key "single") wins and its
-- message also states the monthly total when that is over too; otherwise
-- key "monthly:YYYY-MM", since the monthly case is about the unit's month.
return {
  id = "cash_over_limit",
  name = "现金支付超限额",
  level = "orange",
  on = { "voucher.created" },
  params = { single_limit = 2000000, monthly_limit = 5000000 },
  when = { settle_method = "cash" },
  description = "现金结算单笔超过限额（默认 20000 元），或单位当月现金支付合计（含本笔）超过月限额（默认 50000 元）。",
  check = function(v, ctx)
    if v.settle_method ~= "cash" then
      return nil
    end
    local p = ctx.params
    local now = ctx.now()
    local t = ctx.time(now)
    local month = ("%04d-%02d"):format(t.year, t.month)
    local since = ctx.parse_time(month .. "-01")
    local h = ctx.history { unit = v.unit_code, settle_method = "cash", since = since, ["until"] = now }
    local month_total = h.total + v.amount
    local details = {
      amount = v.amount,
      single_limit = p.single_limit,
      month_total = month_total,
      month_count = h.count + 1,
      monthly_limit = p.monthly_limit,
    }
    if v.amount > p.single_limit then
      local msg = ("现金支付 %s 元超过单笔限额 %s 元"):format(ctx.yuan(v.amount),
        ctx.yuan(p.single_limit))
      if month_total > p.monthly_limit then
        msg = msg .. ("；本月现金支付合计 %s 元超过月限额 %s 元"):format(ctx.yuan(month_total),
          ctx.yuan(p.monthly_limit))
      end
      return { message = msg, details = details, key = "single" }
    end
    if month_total > p.monthly_limit then
      return {
        message = ("单位 %s 本月（%s）现金支付合计 %s 元（含本笔 %s 元）超过月限额 %s 元"):format(
          v.unit_code, month, ctx.yuan(month_total), ctx.yuan(v.amount), ctx.yuan(p.monthly_limit)),
        details = details,
        key = "monthly:" .. month,
      }
    end
    return nil
  end,
}
