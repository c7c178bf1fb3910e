return {
  { name = "hit: 39999 其他支出",
    events = { fx.voucher{ econ_class = "39999" } },
    expect = { { level = "red", match = "39999" } } },
  { name = "hit: 30299 其他商品和服务支出",
    events = { fx.voucher{ econ_class = "30299" } },
    expect = { { level = "red", match = "30299" } } },
  { name = "hit: 31099 其他资本性支出",
    events = { fx.voucher{ econ_class = "31099" } },
    expect = { { level = "red" } } },
  { name = "near miss: a specific code next to a catch-all one",
    events = { fx.voucher{ econ_class = "30298" } },
    expect = {} },
}
