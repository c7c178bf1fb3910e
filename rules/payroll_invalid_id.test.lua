-- IDs with correct GB 11643 check digits unless said otherwise.
local function run(id_no, period)
  local p = { lines = { fx.line{ id_no = id_no } } }
  if period then
    p.period = period
    p.run_id = "GZ-101001-" .. period:gsub("-", "")
  end
  return { fx.indicator{ flags = { "salary" } }, fx.payroll(p) }
end

return {
  { name = "near miss: the default valid ID, aged 44",
    events = run("411202198001011236"),
    expect = {} },
  { name = "hit: wrong check digit",
    events = run("411202198001011237"),
    expect = { { level = "yellow", key = "invalid", match = "尾号 1237" } } },
  { name = "hit: impossible birth date 1980-02-30 (check digit right)",
    events = run("411202198002301235"),
    expect = { { level = "yellow", key = "invalid" } } },
  { name = "hit: 60 on the last day of the period (born 1964-06-30, period 2024-06)",
    events = run("411202196406301232"),
    expect = { { level = "yellow", key = "age", match = "年满 60 岁" } } },
  { name = "near miss: 59 on the last day (born 1964-07-01, period 2024-06)",
    events = run("411202196407011237"),
    expect = {} },
  { name = "hit: born 29 February, period February of a leap year",
    events = run("411202196402291233", "2024-02"),
    expect = { { key = "age", match = "2024-02-29" } } },
  { name = "near miss: born 29 February, period January",
    events = run("411202196402291233", "2024-01"),
    expect = {} },
}
