-- flow_unknown_voucher (red): 未生成凭证的流转事件.
--
-- Fires for signed / sent / paid / returned / cancelled of a voucher_no
-- that was never created (ctx.voucher returns nil).  `key` is the event, so
-- that e.g. an unknown "paid" and a later unknown "returned" of the same
-- number are two cases.
local LABEL = { signed = "签章", sent = "发送银行", paid = "支付", returned = "退票",
                cancelled = "作废" }

return {
  id = "flow_unknown_voucher",
  name = "未知凭证的流转事件",
  level = "red",
  on = { "voucher.signed", "voucher.sent", "voucher.paid", "voucher.returned",
         "voucher.cancelled" },
  params = {},
  description = "收到从未生成的凭证的签章、发送、支付、退票或作废事件。",
  check = function(v, ctx)
    if ctx.voucher(v.voucher_no) ~= nil then
      return nil
    end
    local ev = v.event or ""
    return {
      message = ("凭证 %s 未曾生成，却收到%s（%s）事件"):format(v.voucher_no, LABEL[ev] or ev, ev),
      details = { amount = v.amount },
      key = ev,
    }
  end,
}
