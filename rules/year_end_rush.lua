-- year_end_rush (blue, tick): 年底突击花钱.
--
-- At a tick in months params.from_month..12 (business zone; default
-- November-December): for every indicator with a project_code
-- (ctx.project_indicators), the vouchers `paid` from it since 1
-- params.from_month 00:00 of the tick's year up to the tick
-- (ctx.history{indicator=, state="paid"}) are compared with its allocated
-- amount: a hit when paid * 100 > params.share_pct * allocated (integer
-- percent, default 50).  Subject is the indicator; key the year.
return {
  id = "year_end_rush",
  name = "年底突击花钱",
  level = "blue",
  on = { "tick" },
  params = { from_month = 11, share_pct = 50 },
  description = "11–12 月，项目指标自 11 月 1 日起已支付金额超过其下达额的一定比例（默认 50%）。",
  check = function(v, ctx)
    local now = ctx.now()
    local t = ctx.time(now)
    local p = ctx.params
    if t.month < p.from_month then
      return nil
    end
    local since = ctx.parse_time(("%04d-%02d-01"):format(t.year, p.from_month))
    local hits = {}
    for _, ind in ipairs(ctx.project_indicators()) do
      local h = ctx.history { indicator = ind.indicator_id, state = "paid", since = since,
                              ["until"] = now }
      if h.total > 0 and h.total * 100 > p.share_pct * ind.allocated then
        hits[#hits + 1] = {
          subject = { kind = "indicator", id = ind.indicator_id },
          unit = ind.unit_code,
          key = tostring(t.year),
          message = ("项目指标 %s 自 %d 月 1 日起已支付 %s 元（%d 笔），超过下达额 %s 元的 %d%%"):format(
            ind.indicator_id, p.from_month, ctx.yuan(h.total), h.count, ctx.yuan(ind.allocated),
            p.share_pct),
          details = { paid = h.total, count = h.count, allocated = ind.allocated,
                      share_pct = p.share_pct },
        }
      end
    end
    if #hits == 0 then
      return nil
    end
    return hits
  end,
}
