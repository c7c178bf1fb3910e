local ID1, ID2 = "411202198001011236", "411202198503152346"
local ACC1, ACC2 = "6222021234567890123", "6222021234567890999"

local function unit2_run(lines)
  return fx.payroll{ run_id = "GZ-101002-202406", unit_code = "101002",
                     unit_name = "三门峡市卫生健康委员会", indicator_id = "ZB2024-101002-0001",
                     lines = lines }
end

local function ind1()
  return fx.indicator{ flags = { "salary" } }
end

local function ind2()
  return fx.indicator{ indicator_id = "ZB2024-101002-0001", unit_code = "101002",
                       flags = { "salary" } }
end

return {
  { name = "hit: the same ID twice in one run (the later line)",
    events = { fx.indicator{ flags = { "salary" } },
               fx.payroll{ lines = { fx.line{ emp_id = "E0001", id_no = ID1, account = ACC1 },
                                     fx.line{ emp_id = "E0002", id_no = ID1, account = ACC2 } } } },
    expect = { { level = "red", key = "run", subject = "GZ-101001-202406/E0002",
                 match = "与第 1 行 E0001 身份证号相同" } } },
  { name = "near miss: two different people with their own accounts",
    events = { fx.indicator{ flags = { "salary" } },
               fx.payroll{ lines = { fx.line{ emp_id = "E0001", id_no = ID1, account = ACC1 },
                                     fx.line{ emp_id = "E0002", id_no = ID2, account = ACC2 } } } },
    expect = {} },
  { name = "hit: the same ID paid by two units for the same period",
    events = { ind1(), ind2(),
               fx.payroll{ lines = { fx.line{ id_no = ID1, account = ACC1 } } },
               unit2_run({ fx.line{ emp_id = "W0107", id_no = ID1, account = ACC2 } }) },
    expect = { { level = "red", key = "unit", subject = "GZ-101002-202406/W0107",
                 match = "单位 101001（批次 GZ-101001-202406）" } } },
  { name = "excluded: the same ID in another unit but another period",
    events = { ind1(), ind2(),
               fx.payroll{ run_id = "GZ-101001-202405", period = "2024-05",
                           occurred_at = "2024-05-12T08:00:00+08:00", pay_date = "2024-05-12",
                           lines = { fx.line{ id_no = ID1, account = ACC1 } } },
               unit2_run({ fx.line{ emp_id = "W0107", id_no = ID1, account = ACC1 } }) },
    expect = {} },
  { name = "hit: one account under two ID numbers in the same period",
    events = { ind1(), ind2(),
               fx.payroll{ lines = { fx.line{ id_no = ID1, account = ACC1 } } },
               unit2_run({ fx.line{ emp_id = "W0107", id_no = ID2, account = ACC1 } }) },
    expect = { { level = "red", key = "account", match = "尾号 0123" } } },
  { name = "hit: one account under two ID numbers within one run",
    events = { fx.indicator{ flags = { "salary" } },
               fx.payroll{ lines = { fx.line{ emp_id = "E0001", id_no = ID1, account = ACC1 },
                                     fx.line{ emp_id = "E0002", id_no = ID2, account = ACC1 } } } },
    expect = { { key = "account", subject = "GZ-101001-202406/E0002" } } },
  { name = "hit: the same ID in two parts of one run",
    events = { fx.indicator{ flags = { "salary" } },
               fx.payroll{ part = 1, parts = 2,
                           lines = { fx.line{ emp_id = "E0001", id_no = ID1, account = ACC1 } } },
               fx.payroll{ part = 2, parts = 2, occurred_at = "2024-06-12T08:05:00+08:00",
                           lines = { fx.line{ emp_id = "E0002", id_no = ID1, account = ACC2 } } } },
    expect = { { level = "red", key = "run", subject = "GZ-101001-202406/E0002", match = "多个分包" } } },
  { name = "the per-part index does not carry over to the next run",
    events = { fx.indicator{ flags = { "salary" } },
               fx.payroll{ lines = { fx.line{ emp_id = "E0001", id_no = ID1, account = ACC1 },
                                     fx.line{ emp_id = "E0002", id_no = ID1, account = ACC1 } } },
               fx.payroll{ run_id = "GZ-101001-202407", period = "2024-07",
                           occurred_at = "2024-07-12T08:00:00+08:00", pay_date = "2024-07-12",
                           lines = { fx.line{ emp_id = "E0001", id_no = ID1, account = ACC1 },
                                     fx.line{ emp_id = "E0003", id_no = ID2, account = ACC2 } } } },
    expect = { { key = "run", subject = "GZ-101001-202406/E0002" } } },
}
