local ID = "411202198001011236"

local function run(unit, period, net)
  local y, m = period:match("^(%d+)-(%d+)$")
  return fx.payroll{
    run_id = ("GZ-%s-%s%s"):format(unit, y, m), unit_code = unit, period = period,
    occurred_at = period .. "-12T08:00:00+08:00", pay_date = period .. "-12",
    indicator_id = ("ZB2024-%s-0001"):format(unit),
    lines = { fx.line{ id_no = ID, net = net } },
  }
end

local function ind1()
  return fx.indicator{ flags = { "salary" }, amount = "1000000.00" }
end

local function ind2()
  return fx.indicator{ indicator_id = "ZB2024-101002-0001", unit_code = "101002",
                       flags = { "salary" }, amount = "1000000.00" }
end

return {
  { name = "hit: up 2000.01 and 39 % on the previous period",
    events = { ind1(), ind2(), run("101001", "2024-05", "5084.00"), run("101001", "2024-06", "7084.01") },
    expect = { { level = "orange", subject = "GZ-101001-202406/E0001",
                 match = "增加 2000.01 元" } } },
  { name = "near miss: up exactly 2000.00",
    events = { ind1(), ind2(), run("101001", "2024-05", "5084.00"), run("101001", "2024-06", "7084.00") },
    expect = {} },
  { name = "near miss: up 2500 but only 25 %",
    events = { ind1(), ind2(), run("101001", "2024-05", "10000.00"), run("101001", "2024-06", "12500.00") },
    expect = {} },
  { name = "near miss: up exactly 30 % (3000 on 10000)",
    events = { ind1(), ind2(), run("101001", "2024-05", "10000.00"), run("101001", "2024-06", "13000.00") },
    expect = {} },
  { name = "hit: the previous period was paid by another unit (transfer between units)",
    events = { ind1(), ind2(), run("101002", "2024-05", "5084.00"), run("101001", "2024-06", "8000.00") },
    expect = { { level = "orange", match = "上期在单位 101002" } } },
  -- March 4700 -> May 6000 is +1300 (no hit); June 7000 is +1000 on May but
  -- would be +2300 (49 %) on March.
  { name = "excluded: the latest earlier period decides, not an older one",
    events = { ind1(), ind2(), run("101001", "2024-03", "4700.00"), run("101002", "2024-05", "6000.00"),
               run("101001", "2024-06", "7000.00") },
    expect = {} },
  { name = "excluded: no earlier period",
    events = { ind1(), ind2(), run("101001", "2024-06", "9000.00") },
    expect = {} },
}
