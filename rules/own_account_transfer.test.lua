return {
  { name = "hit: payee_type own_unit",
    events = { fx.voucher{ payee_type = "own_unit", payee_name = "三门峡市教育局工资专户" } },
    expect = { { level = "orange", match = "收款人为本单位账户" } } },
  { name = "hit: payee name equals payer name",
    events = { fx.voucher{ payer_name = "三门峡市教育局机关", payee_name = "三门峡市教育局机关" } },
    expect = { { level = "orange", match = "与付款人名称相同" } } },
  { name = "hit: payee name equals the unit name (trailing space ignored)",
    events = { fx.voucher{ payer_name = "三门峡市教育局零余额账户", payee_name = "三门峡市教育局 " } },
    expect = { { level = "orange", match = "与预算单位名称相同" } } },
  { name = "near miss: a company whose name contains the unit name",
    events = { fx.voucher{ payee_name = "三门峡市教育局印刷厂" } },
    expect = {} },
}
