return {
  { name = "hit: payee is the union, one fen over 10000",
    events = { fx.voucher{ payee_name = "三门峡市教育局工会委员会", amount = "10000.01" } },
    expect = { { level = "yellow", match = "10000.01" } } },
  { name = "near miss: exactly 10000",
    events = { fx.voucher{ payee_name = "三门峡市教育局工会委员会", amount = "10000.00" } },
    expect = {} },
  { name = "excluded: payee is not a union",
    events = { fx.voucher{ amount = "90000.00" } },
    expect = {} },
}
