-- subsidy_duplicate (orange): 同月重复发放同一补贴.
--
-- Fires when the same person (emp_id within the unit) already got a subsidy
-- of the same kind in the same calendar month (ctx.subsidy_count, this
-- payout excluded).  The month is that of paid_at when given, else of
-- occurred_at, in the business zone.
return {
  id = "subsidy_duplicate",
  name = "同月重复发放补贴",
  level = "orange",
  on = { "subsidy" },
  params = {},
  description = "同一人员同一月份重复领取同一种补贴。",
  check = function(v, ctx)
    local at = (v.paid_at and ctx.parse_time(v.paid_at)) or ctx.now()
    local t = ctx.time(at)
    local n = ctx.subsidy_count { emp_id = v.emp_id, unit = v.unit_code, kind = v.kind,
                                  year = t.year, month = t.month, exclude = v.payout_id }
    if n < 1 then
      return nil
    end
    return {
      message = ("%s（%s）%04d-%02d 已领取“%s”%d 次，本次又发放 %s 元"):format(v.name or "",
        v.emp_id or "", t.year, t.month, v.kind or "", n, ctx.yuan(v.amount)),
      details = { amount = v.amount, earlier = n },
    }
  end,
}
