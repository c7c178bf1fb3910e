return {
  { name = "hit: one fen over 20000",
    events = { fx.reimburse{ amount = "20000.01" } },
    expect = { { level = "blue", match = "公务卡报销 20000.01 元超过 20000.00 元" } } },
  { name = "near miss: exactly 20000",
    events = { fx.reimburse{ amount = "20000.00" } },
    expect = {} },
}
