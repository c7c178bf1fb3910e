return {
  { name = "hit: 加班 paid to an individual",
    events = { fx.voucher{ payee_type = "individual", payee_name = "李四", purpose = "发放五月加班费" } },
    expect = { { level = "orange", match = "“加班”" } } },
  { name = "hit: 奖 paid to an individual",
    events = { fx.voucher{ payee_type = "individual", payee_name = "李四", purpose = "年终考核奖励" } },
    expect = { { level = "orange", match = "“奖”" } } },
  { name = "near miss: individual, purpose without a listed word",
    events = { fx.voucher{ payee_type = "individual", payee_name = "李四", purpose = "劳务费（讲课）" } },
    expect = {} },
  { name = "excluded: the same words paid to a company",
    events = { fx.voucher{ payee_type = "company", purpose = "慰问品采购" } },
    expect = {} },
}
