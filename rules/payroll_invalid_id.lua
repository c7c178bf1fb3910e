-- payroll_invalid_id (yellow): 身份证号无效或已达退休年龄.
--
-- Fires when ctx.id_check(id_no) fails (GB 11643: 18 characters, check
-- digit, possible birth date), key "invalid"; or when the person's age on
-- the last day of the run's period (ctx.run.period "YYYY-MM") is at least
-- params.retire_age (default 60), key "age".  Age counts a birthday reached
-- on that last day; someone born on 29 February reaches it on 1 March in a
-- common year.  Messages show only the last four characters of the ID.
local function last_day(y, m)
  local days = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }
  if m == 2 and ((y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0) then
    return 29
  end
  return days[m]
end

local function tail4(s)
  s = s or ""
  return #s > 4 and s:sub(-4) or s
end

return {
  id = "payroll_invalid_id",
  name = "身份证号无效或已达退休年龄",
  level = "yellow",
  on = { "payroll.line" },
  params = { retire_age = 60 },
  description = "身份证号校验位错误或出生日期不存在，或按工资所属期末日计算年龄已达退休年龄（默认 60 岁）。",
  check = function(v, ctx)
    local ok, reason, birth = ctx.id_check(v.id_no or "")
    if not ok then
      return {
        message = ("%s（%s）身份证号（尾号 %s）无效：%s"):format(v.name or "", v.emp_id or "",
          tail4(v.id_no), reason or "校验失败"),
        details = {},
        key = "invalid",
      }
    end
    local period = ctx.run and ctx.run.period or ""
    local py, pm = period:match("^(%d%d%d%d)-(%d%d)$")
    local by, bm, bd = (birth or ""):match("^(%d%d%d%d)-(%d%d)-(%d%d)$")
    if py == nil or by == nil then
      return nil
    end
    py, pm, by, bm, bd = tonumber(py), tonumber(pm), tonumber(by), tonumber(bm), tonumber(bd)
    local ld = last_day(py, pm)
    local age = py - by
    if pm < bm or (pm == bm and ld < bd) then
      age = age - 1
    end
    if age < ctx.params.retire_age then
      return nil
    end
    return {
      message = ("%s（%s）出生于 %s，至 %s-%02d 年满 %d 岁，已达退休年龄 %d 岁，仍在 %s 工资中发放"):format(
        v.name or "", v.emp_id or "", birth, period, ld, age, ctx.params.retire_age, period),
      details = { age = age, retire_age = ctx.params.retire_age, net = v.net },
      key = "age",
    }
  end,
}
