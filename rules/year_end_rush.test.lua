local P = "ZB2024-101001-0041"

local function project_indicator(extra)
  local t = { indicator_id = P, amount = "10000.00", project_code = "P2024-0031",
              occurred_at = "2024-03-01T09:00:00+08:00" }
  for k, v in pairs(extra or {}) do t[k] = v end
  return fx.indicator(t)
end

-- A voucher on P created, signed, sent and paid on `day`.
local function paid(no, amount, day, extra)
  local t = { voucher_no = no, indicator_id = P, project_code = "P2024-0031", amount = amount,
              occurred_at = day .. "T09:00:00+08:00" }
  for k, v in pairs(extra or {}) do
    if v == false then t[k] = nil else t[k] = v end
  end
  return {
    fx.voucher(t),
    fx.voucher_event{ voucher_no = no, event = "signed", occurred_at = day .. "T09:10:00+08:00" },
    fx.voucher_event{ voucher_no = no, event = "sent", occurred_at = day .. "T09:20:00+08:00" },
    fx.voucher_event{ voucher_no = no, event = "paid", occurred_at = day .. "T10:00:00+08:00" },
  }
end

local function cat(...)
  local out = {}
  for _, l in ipairs({ ... }) do
    for _, e in ipairs(l) do out[#out + 1] = e end
  end
  return out
end

return {
  { name = "hit: more than half paid since 1 November",
    events = cat({ project_indicator() }, paid("ZF2024YE0001", "5000.01", "2024-11-05"),
                 { fx.tick{ at = "2024-11-06T10:00:00+08:00" } }),
    expect = { { level = "blue", subject = P, key = "2024", match = "已支付 5000.01 元" } } },
  { name = "near miss: exactly half",
    events = cat({ project_indicator() }, paid("ZF2024YE0002", "5000.00", "2024-11-05"),
                 { fx.tick{ at = "2024-11-06T10:00:00+08:00" } }),
    expect = {} },
  { name = "excluded: paid in October does not count",
    events = cat({ project_indicator() }, paid("ZF2024YE0003", "6000.00", "2024-10-31"),
                 { fx.tick{ at = "2024-11-06T10:00:00+08:00" } }),
    expect = {} },
  { name = "excluded: a tick in October",
    events = cat({ project_indicator() }, paid("ZF2024YE0004", "6000.00", "2024-10-08"),
                 { fx.tick{ at = "2024-10-31T23:00:00+08:00" } }),
    expect = {} },
  { name = "excluded: indicator without a project code",
    events = cat({ fx.indicator{ indicator_id = P, amount = "10000.00",
                                 occurred_at = "2024-03-01T09:00:00+08:00" } },
                 paid("ZF2024YE0005", "8000.00", "2024-11-05", { project_code = false }),
                 { fx.tick{ at = "2024-11-06T10:00:00+08:00" } }),
    expect = {} },
}
