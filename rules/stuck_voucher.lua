-- stuck_voucher (yellow, tick): 凭证发送银行后长时间未支付.
--
-- At each tick, every voucher still in state `sent` whose sent time is at
-- least params.hours hours before the tick (ctx.sent_before(now - h*3600))
-- gives one hit about that voucher (subject voucher, its unit).  Repeated
-- ticks count as occurrences of the same alert.
return {
  id = "stuck_voucher",
  name = "凭证长时间未支付",
  level = "yellow",
  on = { "tick" },
  params = { hours = 48 },
  description = "凭证发送银行后超过 h 小时（默认 48 小时）仍未支付、退票或作废。",
  check = function(v, ctx)
    local now = ctx.now()
    local rows = ctx.sent_before(now - ctx.params.hours * 3600)
    local hits = {}
    for _, r in ipairs(rows) do
      local hours = (now - r.sent_at) // 3600
      hits[#hits + 1] = {
        subject = { kind = "voucher", id = r.voucher_no },
        unit = r.unit_code,
        message = ("凭证 %s（%s 元）于 %s 发送银行，已 %d 小时未支付、退票或作废，超过 %d 小时"):format(
          r.voucher_no, ctx.yuan(r.amount), ctx.date(r.sent_at), hours, ctx.params.hours),
        details = { amount = r.amount, sent_at = r.sent_at, hours = hours,
                    limit_hours = ctx.params.hours },
      }
    end
    if #hits == 0 then
      return nil
    end
    return hits
  end,
}
