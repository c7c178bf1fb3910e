-- flow_out_of_order (yellow): 凭证流转顺序异常.
--
-- The flow (contract §2.1): created -> signed -> sent -> paid; cancelled
-- may follow created/signed/sent; returned may follow sent or paid.
-- Anything else from the voucher's stored state is out of order: paid
-- before sent, sent before signed, any event after cancelled or returned, a
-- repeated event, and a second `created` for an existing voucher_no.  A
-- voucher never created is left to flow_unknown_voucher.  `key` is
-- "<state>-><event>".
local ALLOWED = {
  created = { signed = true, cancelled = true },
  signed = { sent = true, cancelled = true },
  sent = { paid = true, cancelled = true, returned = true },
  paid = { returned = true },
  returned = {},
  cancelled = {},
}

local LABEL = { created = "已生成", signed = "已签章", sent = "已发送银行", paid = "已支付",
                returned = "已退票", cancelled = "已作废" }

return {
  id = "flow_out_of_order",
  name = "凭证流转顺序异常",
  level = "yellow",
  on = { "voucher.*" },
  params = {},
  description = "凭证事件不符合流转顺序（生成→签章→发送→支付；作废、退票只能在允许的状态之后）。",
  check = function(v, ctx)
    local stored = ctx.voucher(v.voucher_no)
    if stored == nil then
      return nil
    end
    local ev, state = v.event or "", stored.state or ""
    local allowed = ALLOWED[state]
    if allowed and allowed[ev] then
      return nil
    end
    return {
      message = ("凭证 %s 当前状态为%s（%s），不应收到 %s 事件"):format(v.voucher_no,
        LABEL[state] or state, state, ev),
      details = { amount = stored.amount },
      key = state .. "->" .. ev,
    }
  end,
}
