local function sent_voucher(no)
  return {
    fx.voucher{ voucher_no = no, amount = "8000.00" },
    fx.voucher_event{ voucher_no = no, event = "signed", occurred_at = "2024-06-04T09:00:00+08:00" },
    fx.voucher_event{ voucher_no = no, event = "sent", occurred_at = "2024-06-04T10:00:00+08:00" },
  }
end

local function with(list, ...)
  local out = {}
  for _, e in ipairs(list) do out[#out + 1] = e end
  for _, e in ipairs({ ... }) do out[#out + 1] = e end
  return out
end

return {
  { name = "hit: sent exactly 48 h before the tick",
    events = with(sent_voucher("ZF2024SV0001"), fx.tick{ at = "2024-06-06T10:00:00+08:00" }),
    expect = { { level = "yellow", subject = "ZF2024SV0001", match = "已 48 小时" } } },
  { name = "near miss: one second short of 48 h",
    events = with(sent_voucher("ZF2024SV0002"), fx.tick{ at = "2024-06-06T09:59:59+08:00" }),
    expect = {} },
  { name = "excluded: paid before the tick",
    events = with(sent_voucher("ZF2024SV0003"),
                  fx.voucher_event{ voucher_no = "ZF2024SV0003", event = "paid",
                                    occurred_at = "2024-06-05T10:00:00+08:00" },
                  fx.tick{ at = "2024-06-07T10:00:00+08:00" }),
    expect = {} },
  { name = "excluded: created and signed but never sent",
    events = { fx.voucher{ voucher_no = "ZF2024SV0004" },
               fx.voucher_event{ voucher_no = "ZF2024SV0004", event = "signed",
                                 occurred_at = "2024-06-03T11:00:00+08:00" },
               fx.tick{ at = "2024-06-10T10:00:00+08:00" } },
    expect = {} },
  { name = "two stuck vouchers give two hits at one tick",
    events = with(sent_voucher("ZF2024SV0005"), table.unpack(with(sent_voucher("ZF2024SV0006"),
                  fx.tick{ at = "2024-06-07T10:00:00+08:00" }))),
    expect = { { subject = "ZF2024SV0005" }, { subject = "ZF2024SV0006" } } },
}
