-- payroll_duplicate_person (red): 重复发放工资（一人多领、一卡多人）.
--
-- A line is the duplicate when something paid EARLIER in the same period
-- already used its ID number or its account; the first occurrence is the
-- legitimate one and is not flagged.  The first case that applies (key):
--   "run":     the same id_no on an earlier line of this run part, or on a
--              line of an earlier part of the same run (ctx.period_lines);
--   "unit":    the same id_no already paid for this period in a run of
--              ANOTHER unit (ctx.period_lines{id_no=});
--   "account": the same bank account already paid for this period under a
--              different id_no, on an earlier line of this part or in any
--              stored run (ctx.period_lines{account=}).
-- The same ID paid twice by the SAME unit in two runs of one period (e.g. a
-- supplementary run 补发) is not this rule's case.  Messages show only the
-- last four characters of IDs and accounts.
local function tail4(s)
  s = s or ""
  return #s > 4 and s:sub(-4) or s
end

-- Index of the part's lines: position of each line, first position of each
-- id_no, lines by account in order.  It makes a part of N lines cost O(N)
-- instead of O(N^2).  The engine hands every line of one part the same
-- ctx.run table (and v is that table's line), so the index is built at the
-- first line, reused while ctx.run is that table, and dropped after the
-- part's last line; any other table simply rebuilds it.
local memo = {}

local function part_index(run)
  if memo.run ~= run then
    local pos, first, accts = {}, {}, {}
    for i, l in ipairs(run.lines or {}) do
      pos[l] = i
      local id = l.id_no or ""
      if first[id] == nil then first[id] = i end
      if l.account and l.account ~= "" then
        local a = accts[l.account]
        if a == nil then
          a = {}
          accts[l.account] = a
        end
        a[#a + 1] = i
      end
    end
    memo.run, memo.idx = run, { pos = pos, first = first, accts = accts }
  end
  return memo.idx
end

local function release_if_last(run, v)
  local lines = run.lines
  if lines and lines[#lines] == v then
    memo.run, memo.idx = nil, nil
  end
end

-- Position of v in the part: by identity, else the first line with the
-- same emp_id and id_no.
local function position(run, idx, v)
  local p = idx.pos[v]
  if p then return p end
  for i, l in ipairs(run.lines or {}) do
    if l.emp_id == v.emp_id and l.id_no == v.id_no then return i end
  end
  return #(run.lines or {}) + 1
end

return {
  id = "payroll_duplicate_person",
  name = "重复发放工资",
  level = "red",
  on = { "payroll.line" },
  params = {},
  description = "同一身份证号在同一批次出现两次，或同期在两个单位的工资中出现；或同期一个银行账户对应两个身份证号。",
  check = function(v, ctx)
    local run = ctx.run
    local idx = part_index(run)
    local p = position(run, idx, v)
    release_if_last(run, v)
    local lines = run.lines or {}
    local id = v.id_no or ""
    local who = ("%s（%s，身份证尾号 %s）"):format(v.name or "", v.emp_id or "", tail4(id))

    local f = idx.first[id]
    if f and f < p then
      return {
        message = ("%s 在工资批次 %s 中重复出现（与第 %d 行 %s 身份证号相同）"):format(who, run.run_id,
          f, lines[f].emp_id or ""),
        details = { net = v.net, first_line = f, line = p },
        key = "run",
      }
    end
    for _, l in ipairs(ctx.period_lines(run.period, { id_no = id })) do
      if l.run_id == run.run_id then
        return {
          message = ("%s 在工资批次 %s 的多个分包中重复出现（%s）"):format(who, run.run_id,
            l.emp_id or ""),
          details = { net = v.net },
          key = "run",
        }
      end
      if l.unit_code ~= run.unit_code then
        return {
          message = ("%s 在 %s 期同时由单位 %s（批次 %s）和单位 %s（批次 %s）发放工资"):format(who,
            run.period, run.unit_code, run.run_id, l.unit_code, l.run_id),
          details = { net = v.net, other_unit = l.unit_code, other_run = l.run_id },
          key = "unit",
        }
      end
    end

    local acct = v.account or ""
    if acct == "" then
      return nil
    end
    local other
    for _, i in ipairs(idx.accts[acct] or {}) do
      if i >= p then break end
      if lines[i].id_no ~= id then
        other = { emp_id = lines[i].emp_id, id_no = lines[i].id_no, run_id = run.run_id }
        break
      end
    end
    if other == nil then
      for _, l in ipairs(ctx.period_lines(run.period, { account = acct })) do
        if l.id_no ~= id then
          other = l
          break
        end
      end
    end
    if other == nil then
      return nil
    end
    return {
      message = ("%s 的工资账户（尾号 %s）在 %s 期已为身份证尾号 %s 的人员（%s，批次 %s）收款"):format(
        who, tail4(acct), run.period, tail4(other.id_no), other.emp_id or "", other.run_id or ""),
      details = { net = v.net },
      key = "account",
    }
  end,
}
