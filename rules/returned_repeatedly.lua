-- returned_repeatedly (yellow): 同一收款账户多次退票.
--
-- On voucher.returned: the payee_account of the stored voucher had, with
-- this return, >= params.count returned vouchers (any unit) within
-- params.days days (returned time >= now - days*24h, inclusive).  This
-- voucher is counted once.  Only a return the flow allows (from sent or
-- paid) is a 退票; a return out of order (e.g. a second return of the same
-- voucher) is flow_out_of_order's case and is not counted here.
return {
  id = "returned_repeatedly",
  name = "同一收款账户多次退票",
  level = "yellow",
  on = { "voucher.returned" },
  params = { count = 3, days = 30 },
  description = "同一收款账户在 d 天内（默认 30 天）退票不少于 n 次（默认 3 次）。",
  check = function(v, ctx)
    local stored = ctx.voucher(v.voucher_no)
    if stored == nil or stored.payee_account == nil or stored.payee_account == "" then
      return nil
    end
    if stored.state ~= "sent" and stored.state ~= "paid" then
      return nil
    end
    local now = ctx.now()
    local h = ctx.history { payee_account = stored.payee_account, state = "returned",
                            since = now - ctx.params.days * 86400, ["until"] = now,
                            exclude_voucher = v.voucher_no }
    local count = h.count + 1
    if count < ctx.params.count then
      return nil
    end
    return {
      message = ("收款账户（%s）%d 天内退票 %d 次（含本次凭证 %s，%s 元），达到 %d 次"):format(
        stored.payee_name or "", ctx.params.days, count, v.voucher_no,
        ctx.yuan(stored.amount or 0), ctx.params.count),
      details = { amount = stored.amount, count = count, days = ctx.params.days,
                  min_count = ctx.params.count },
    }
  end,
}
