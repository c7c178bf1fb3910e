local function ev(no, event, at, amount)
  return fx.voucher_event{ voucher_no = no, event = event, occurred_at = at, amount = amount }
end

return {
  { name = "hit: paid carries a different amount",
    events = { fx.voucher{ voucher_no = "ZF2024FA0001", amount = "1000.00" },
               ev("ZF2024FA0001", "signed", "2024-06-03T11:00:00+08:00"),
               ev("ZF2024FA0001", "sent", "2024-06-03T12:00:00+08:00"),
               ev("ZF2024FA0001", "paid", "2024-06-04T10:00:00+08:00", "1000.01") },
    expect = { { level = "red", key = "paid",
                 match = "paid 事件金额 1000.01 元与生成时金额 1000.00 元不一致" } } },
  { name = "near miss: the same amount",
    events = { fx.voucher{ voucher_no = "ZF2024FA0002", amount = "1000.00" },
               ev("ZF2024FA0002", "signed", "2024-06-03T11:00:00+08:00", "1000.00") },
    expect = {} },
  { name = "excluded: an event without an amount",
    events = { fx.voucher{ voucher_no = "ZF2024FA0003", amount = "1000.00" },
               ev("ZF2024FA0003", "signed", "2024-06-03T11:00:00+08:00") },
    expect = {} },
  { name = "hit: a repeated created with another amount",
    events = { fx.voucher{ voucher_no = "ZF2024FA0004", amount = "1000.00" },
               fx.voucher{ voucher_no = "ZF2024FA0004", amount = "1200.00",
                           occurred_at = "2024-06-03T11:00:00+08:00" } },
    expect = { { level = "red", key = "created" } } },
}
