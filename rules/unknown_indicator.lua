-- unknown_indicator (red): 指标不存在、不属于本单位或不属于本年度.
--
-- Reading: the voucher's indicator_id must name an allocated indicator
-- whose unit_code equals the voucher's unit_code and whose year equals the
-- voucher's year.  One hit per voucher; `key` says which of the three it is
-- (missing / unit / year), the first that applies in that order.
return {
  id = "unknown_indicator",
  name = "指标不存在或不属于本单位本年度",
  level = "red",
  on = { "voucher.created" },
  params = {},
  description = "凭证所用指标不存在、属于其他单位或其他年度。",
  check = function(v, ctx)
    local id = v.indicator_id or ""
    local ind = ctx.indicator(id)
    if ind == nil then
      return {
        message = ("指标 %s 不存在（未下达），支付金额 %s 元"):format(id, ctx.yuan(v.amount)),
        details = { amount = v.amount },
        key = "missing",
      }
    end
    if ind.unit_code ~= v.unit_code then
      return {
        message = ("指标 %s 属于单位 %s，不属于付款单位 %s，支付金额 %s 元"):format(id,
          ind.unit_code, v.unit_code, ctx.yuan(v.amount)),
        details = { amount = v.amount, indicator_unit = ind.unit_code, voucher_unit = v.unit_code },
        key = "unit",
      }
    end
    if v.year ~= nil and ind.year ~= v.year then
      return {
        message = ("指标 %s 为 %d 年度指标，凭证年度为 %d 年，支付金额 %s 元"):format(id,
          ind.year, v.year, ctx.yuan(v.amount)),
        details = { amount = v.amount, indicator_year = ind.year, voucher_year = v.year },
        key = "year",
      }
    end
    return nil
  end,
}
