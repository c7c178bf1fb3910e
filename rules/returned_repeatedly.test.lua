-- Each voucher to the same payee account goes created -> signed -> sent ->
-- returned on the given day.
local function returned(no, day, account)
  return {
    fx.voucher{ voucher_no = no, occurred_at = day .. "T09:00:00+08:00",
                payee_account = account or "41050166880800000123" },
    fx.voucher_event{ voucher_no = no, event = "signed", occurred_at = day .. "T09:10:00+08:00" },
    fx.voucher_event{ voucher_no = no, event = "sent", occurred_at = day .. "T09:20:00+08:00" },
    fx.voucher_event{ voucher_no = no, event = "returned", occurred_at = day .. "T10:00:00+08:00",
                      reason = "户名与账号不符" },
  }
end

local function cat(...)
  local out = {}
  for _, l in ipairs({ ... }) do
    for _, e in ipairs(l) do out[#out + 1] = e end
  end
  return out
end

return {
  { name = "hit: third return to the same account within 30 days",
    events = cat(returned("ZF2024RR0001", "2024-06-01"), returned("ZF2024RR0002", "2024-06-10"),
                 returned("ZF2024RR0003", "2024-06-20")),
    expect = { { level = "yellow", subject = "ZF2024RR0003", match = "退票 3 次" } } },
  { name = "near miss: only two returns",
    events = cat(returned("ZF2024RR0004", "2024-06-01"), returned("ZF2024RR0005", "2024-06-10")),
    expect = {} },
  { name = "hit: first return exactly 30 x 24 h before the third",
    events = cat(returned("ZF2024RR0006", "2024-05-21"), returned("ZF2024RR0007", "2024-06-01"),
                 returned("ZF2024RR0008", "2024-06-20")),
    expect = { { level = "yellow" } } },
  { name = "near miss: first return more than 30 days before",
    events = cat(returned("ZF2024RR0009", "2024-05-20"), returned("ZF2024RR0010", "2024-06-01"),
                 returned("ZF2024RR0011", "2024-06-20")),
    expect = {} },
  { name = "excluded: returns to another account do not count",
    events = cat(returned("ZF2024RR0012", "2024-06-01"),
                 returned("ZF2024RR0013", "2024-06-10", "62220200000000000099"),
                 returned("ZF2024RR0014", "2024-06-20")),
    expect = {} },
  { name = "excluded: a return out of order (voucher never sent) is not a 退票",
    events = cat(returned("ZF2024RR0015", "2024-06-01"), returned("ZF2024RR0016", "2024-06-10"),
                 { fx.voucher{ voucher_no = "ZF2024RR0017", occurred_at = "2024-06-20T09:00:00+08:00" },
                   fx.voucher_event{ voucher_no = "ZF2024RR0017", event = "returned",
                                     occurred_at = "2024-06-20T10:00:00+08:00" } }),
    expect = {} },
}
