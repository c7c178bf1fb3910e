-- flow_amount_changed (red): 凭证金额在流转中被改变.
--
-- Fires when an event for an existing voucher carries an `amount`
-- different from the created amount (a repeated `created` with another
-- amount included).  Events without an amount are not judged.  `key` is
-- the event name.
return {
  id = "flow_amount_changed",
  name = "凭证金额被改变",
  level = "red",
  on = { "voucher.*" },
  params = {},
  when = { amount = { present = true } },
  description = "凭证后续事件所带金额与生成时金额不一致。",
  check = function(v, ctx)
    if v.amount == nil then
      return nil
    end
    local stored = ctx.voucher(v.voucher_no)
    if stored == nil or stored.amount == nil or stored.amount == v.amount then
      return nil
    end
    return {
      message = ("凭证 %s 的 %s 事件金额 %s 元与生成时金额 %s 元不一致"):format(v.voucher_no,
        v.event or "", ctx.yuan(v.amount), ctx.yuan(stored.amount)),
      details = { amount = v.amount, created_amount = stored.amount,
                  difference = v.amount - stored.amount },
      key = v.event,
    }
  end,
}
