-- payroll_duplicate_person (red): 重复发放工资（一人多领、一卡多人）.
--
-- For each payroll line, the first case that applies (key names it):
--   "run":         the same id_no on another line of this run part
--                  (ctx.run.lines; every such line gets its own hit), or on
--                  a line of an earlier part of the same run when
--                  ctx.period_lines returns those;
--   "unit":        the same id_no paid in a run of ANOTHER unit for the same
--                  period (ctx.period_lines{id_no=});
--   "account":     the same bank account under a different id_no in this
--                  run part or in any other run of the same period
--                  (ctx.period_lines{account=}).
-- Messages show only the last four characters of IDs and accounts.
local function tail4(s)
  s = s or ""
  return #s > 4 and s:sub(-4) or s
end

-- Index of the part's lines by id_no (count) and by account (lines in
-- order), so that a part of N lines costs O(N) and not O(N^2).  The engine
-- hands every line of one part the same ctx.run table, so the index is
-- built at the first line, reused while ctx.run is that table, and dropped
-- after the part's last line; any other table simply rebuilds it.
local memo = {}

local function part_index(run)
  if memo.run ~= run then
    local ids, accts = {}, {}
    for _, l in ipairs(run.lines or {}) do
      local id = l.id_no or ""
      ids[id] = (ids[id] or 0) + 1
      if l.account and l.account ~= "" then
        local a = accts[l.account]
        if a == nil then
          a = {}
          accts[l.account] = a
        end
        a[#a + 1] = l
      end
    end
    memo.run, memo.ids, memo.accts = run, ids, accts
  end
  return memo.ids, memo.accts
end

local function release_if_last(run, v)
  local lines = run.lines
  if lines and lines[#lines] == v then
    memo.run, memo.ids, memo.accts = nil, nil, nil
  end
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
    local ids, accts = part_index(run)
    release_if_last(run, v)
    local who = ("%s（%s，身份证尾号 %s）"):format(v.name or "", v.emp_id or "", tail4(v.id_no))
    local same_id, other_id_same_acct = ids[v.id_no or ""] or 0, nil
    if v.account and v.account ~= "" then
      for _, l in ipairs(accts[v.account] or {}) do
        if l.id_no ~= v.id_no then
          other_id_same_acct = l
          break
        end
      end
    end
    if same_id >= 2 then
      return {
        message = ("%s 在工资批次 %s 中出现 %d 次"):format(who, run.run_id, same_id),
        details = { lines = same_id, net = v.net },
        key = "run",
      }
    end
    for _, l in ipairs(ctx.period_lines(run.period, { id_no = v.id_no })) do
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
    if v.account and v.account ~= "" then
      local other = other_id_same_acct
      if other == nil then
        for _, l in ipairs(ctx.period_lines(run.period, { account = v.account })) do
          if l.id_no ~= v.id_no then
            other = l
            break
          end
        end
      end
      if other then
        return {
          message = ("%s 的工资账户（尾号 %s）在 %s 期同时为身份证尾号 %s 的人员（%s，批次 %s）收款"):format(
            who, tail4(v.account), run.period, tail4(other.id_no), other.emp_id or "",
            other.run_id or run.run_id),
          details = { net = v.net },
          key = "account",
        }
      end
    end
    return nil
  end,
}
