-- fixture.lua - the `fx` library of rule test cases (rules/<id>.test.lua).
--
-- Each constructor returns {subject = "<NATS subject>", data = {...}}: the
-- wire form of one inbound message (money as yuan STRINGS), fed by the
-- runner through the real decoder, the rule and the ledger.  Every field can
-- be overridden by passing it; set a field to fx.none to leave it out; pass
-- _subject to send on another subject.  Event ids ("evt-fx-<n>"), voucher
-- numbers ("ZF2024FX<nnnn>"), reimbursement and payout ids auto-increment
-- within one test file.
local fx = {}
local none = setmetatable({}, { __tostring = function() return "fx.none" end })
fx.none = none

local counters = { evt = 0, voucher = 0, reimb = 0, payout = 0 }
local last_voucher_no = nil

local function next_id(kind)
  counters[kind] = counters[kind] + 1
  return counters[kind]
end

local function copy(t)
  if type(t) ~= "table" then return t end
  local c = {}
  for k, v in pairs(t) do c[k] = copy(v) end
  return c
end

-- defaults overridden by o; fx.none removes a field
local function merge(defaults, o)
  local d = copy(defaults)
  for k, v in pairs(o or {}) do
    if k ~= "_subject" then
      if v == none then d[k] = nil else d[k] = v end
    end
  end
  return d
end

local function message(kind, data, o)
  local subject = (o and o._subject) or ("fiscal." .. kind .. "." .. tostring(data.unit_code))
  return { subject = subject, data = data }
end

local indicator_defaults = {
  op = "allocate",
  occurred_at = "2024-06-03T09:00:00+08:00",
  doc_no = "三财预〔2024〕1号",
  indicator_id = "ZB2024-101001-0001",
  year = 2024,
  unit_code = "101001",
  func_class = "2050201",
  econ_class = "30201",
  fund_type = "1",
  fund_source = "一般公共预算",
  amount = "1000000.00",
  note = "年初预算",
  flags = {},
}

function fx.indicator(o)
  local d = merge(indicator_defaults, o)
  if d.id == nil and not (o and o.id == none) then d.id = "evt-fx-" .. next_id("evt") end
  return message("indicator", d, o)
end

function fx.adjust(o)
  local base = copy(o or {})
  if base.op == nil then base.op = "adjust" end
  return fx.indicator(base)
end

function fx.transfer(o)
  local base = copy(o or {})
  if base.op == nil then base.op = "transfer" end
  if base.from_indicator_id == nil then base.from_indicator_id = "ZB2024-101001-0002" end
  return fx.indicator(base)
end

local voucher_defaults = {
  event = "created",
  year = 2024,
  occurred_at = "2024-06-03T10:15:00+08:00",
  unit_code = "101001",
  unit_name = "三门峡市教育局",
  indicator_id = "ZB2024-101001-0001",
  func_class = "2050201",
  econ_class = "30201",
  pay_method = "direct",
  settle_method = "transfer",
  payee_name = "三门峡市某某办公用品有限公司",
  payee_account = "41050166880800000123",
  payee_bank = "中国建设银行三门峡分行",
  payee_type = "company",
  payer_name = "三门峡市教育局",
  payer_account = "41050166880800000001",
  amount = "1000.00",
  purpose = "办公用品采购",
}

function fx.voucher(o)
  local d = merge(voucher_defaults, o)
  if d.id == nil and not (o and o.id == none) then d.id = "evt-fx-" .. next_id("evt") end
  if d.voucher_no == nil and not (o and o.voucher_no == none) then
    d.voucher_no = string.format("ZF2024FX%04d", next_id("voucher"))
  end
  last_voucher_no = d.voucher_no
  return message("voucher", d, o)
end

-- A later voucher event; voucher_no defaults to the last fx.voucher's.
function fx.voucher_event(o)
  local defaults = {
    event = "paid",
    occurred_at = "2024-06-04T10:00:00+08:00",
    unit_code = "101001",
    voucher_no = last_voucher_no,
  }
  local d = merge(defaults, o)
  if (d.event == "returned" or d.event == "cancelled") and d.reason == nil
      and not (o and o.reason == none) then
    d.reason = "退票"
  end
  if d.id == nil and not (o and o.id == none) then d.id = "evt-fx-" .. next_id("evt") end
  return message("voucher", d, o)
end

local line_defaults = {
  emp_id = "E0001",
  name = "张三",
  id_no = "411202198001011236",
  phone = "13800000000",
  account = "6222021234567890123",
  earnings = {
    { name = "岗位工资", amount = "3000.00" },
    { name = "薪级工资", amount = "1200.00" },
    { name = "津贴补贴", amount = "2500.00" },
  },
  deductions = {
    { name = "养老保险", amount = "480.00" },
    { name = "职业年金", amount = "240.00" },
    { name = "医疗保险", amount = "120.00" },
    { name = "住房公积金", amount = "720.00" },
    { name = "个人所得税", amount = "56.00" },
  },
  gross = "6700.00",
  net = "5084.00",
}

-- One payroll line (not a message): put it in fx.payroll{lines = {...}}.
function fx.line(o)
  return merge(line_defaults, o)
end

local payroll_defaults = {
  run_id = "GZ-101001-202406",
  part = 1,
  parts = 1,
  occurred_at = "2024-06-12T08:00:00+08:00",
  unit_code = "101001",
  unit_name = "三门峡市教育局",
  period = "2024-06",
  pay_date = "2024-06-12",
  indicator_id = "ZB2024-101001-0001",
}

function fx.payroll(o)
  local d = merge(payroll_defaults, o)
  if d.lines == nil then d.lines = { fx.line{} } end
  if d.id == nil and not (o and o.id == none) then d.id = "evt-fx-" .. next_id("evt") end
  return message("payroll", d, o)
end

local reimburse_defaults = {
  occurred_at = "2024-06-05T10:00:00+08:00",
  unit_code = "101001",
  emp_id = "E0001",
  name = "张三",
  phone = "13800000000",
  amount = "1234.00",
  card_last4 = "1234",
  spent_on = "2024-05-28",
  paid_at = "2024-06-05T10:00:00+08:00",
  summary = "差旅费",
}

function fx.reimburse(o)
  local d = merge(reimburse_defaults, o)
  if d.id == nil and not (o and o.id == none) then d.id = "evt-fx-" .. next_id("evt") end
  if d.reimb_id == nil and not (o and o.reimb_id == none) then
    d.reimb_id = string.format("BX2024-%04d", next_id("reimb"))
  end
  return message("reimburse", d, o)
end

local subsidy_defaults = {
  occurred_at = "2024-06-05T10:00:00+08:00",
  unit_code = "101001",
  emp_id = "E0001",
  name = "张三",
  phone = "13800000000",
  kind = "取暖补贴",
  amount = "1800.00",
  paid_at = "2024-06-05T10:00:00+08:00",
}

function fx.subsidy(o)
  local d = merge(subsidy_defaults, o)
  if d.id == nil and not (o and o.id == none) then d.id = "evt-fx-" .. next_id("evt") end
  if d.payout_id == nil and not (o and o.payout_id == none) then
    d.payout_id = string.format("BT2024-%04d", next_id("payout"))
  end
  return message("subsidy", d, o)
end

-- A tick of the `tick` rules at that time (RFC 3339 or unix seconds).
function fx.tick(o)
  local at = (o and o.at) or "2024-06-06T10:00:00+08:00"
  return { subject = "tick", data = { at = at } }
end

return fx
