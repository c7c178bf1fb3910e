return {
  { name = "hit: one fen over ten million",
    events = { fx.indicator{ amount = "20000000.00" },
               fx.voucher{ amount = "10000000.01" } },
    expect = { { level = "yellow", match = "10000000.01" } } },
  { name = "near miss: exactly ten million",
    events = { fx.indicator{ amount = "20000000.00" },
               fx.voucher{ amount = "10000000.00" } },
    expect = {} },
}
