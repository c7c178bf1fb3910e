local IND = "ZB2024-101001-0031"
local function sg_indicator()
  return fx.indicator{ indicator_id = IND, econ_class = "30217", amount = "10000.00",
                       flags = { "sangong" } }
end
local function sg(amount, no, econ)
  return fx.voucher{ indicator_id = IND, econ_class = econ or "30217", amount = amount,
                     voucher_no = no }
end

return {
  { name = "hit yellow: spend reaches 90 % of the sangong allocation",
    events = { sg_indicator(), sg("9000.00") },
    expect = { { level = "yellow", key = "2024:warn", match = "90.0%" } } },
  { name = "near miss: one fen under 90 %",
    events = { sg_indicator(), sg("8999.99") },
    expect = {} },
  { name = "yellow at exactly 100 %, red one fen over",
    events = { sg_indicator(), sg("6000.00"), sg("4000.00"), sg("0.01", nil, "30231") },
    expect = { { level = "yellow", key = "2024:warn" },
               { level = "red", key = "2024:over", match = "超过三公指标 10000.00 元" } } },
  { name = "excluded: a cancelled 三公 voucher is not spend",
    events = { sg_indicator(), sg("8000.00", "ZF2024SG0001"),
               fx.voucher_event{ voucher_no = "ZF2024SG0001", event = "cancelled",
                                 occurred_at = "2024-06-03T11:00:00+08:00" },
               fx.voucher{ indicator_id = IND, econ_class = "30217", amount = "1000.00",
                           occurred_at = "2024-06-04T10:15:00+08:00" } },
    expect = {} },
  { name = "excluded: non-三公 econ class is not judged",
    events = { sg_indicator(), fx.voucher{ amount = "20000.00" } },
    expect = {} },
  -- 2023 has no sangong allocation (silent); the 2024 voucher sees only
  -- 2024 spend: 5000 of 10000 = 50 %, no hit.
  { name = "excluded: last calendar year's spend (31 Dec 23:59:59 business time)",
    events = { sg_indicator(),
               fx.voucher{ indicator_id = IND, econ_class = "30217", amount = "5000.00",
                           occurred_at = "2023-12-31T23:59:59+08:00" },
               fx.voucher{ indicator_id = IND, econ_class = "30217", amount = "5000.00",
                           occurred_at = "2024-01-01T00:00:00+08:00" } },
    expect = {} },
  { name = "excluded: no sangong allocation at all (left to sangong_diversion)",
    events = { fx.indicator{}, fx.voucher{ econ_class = "30231", amount = "100.00" } },
    expect = {} },
  { name = "param override: warn at 50 %",
    params = { warn_pct = 50 },
    events = { sg_indicator(), sg("5000.00") },
    expect = { { level = "yellow", match = "预警线 50%" } } },
}
