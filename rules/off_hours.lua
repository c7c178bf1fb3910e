-- off_hours (yellow): 非工作时间支付.
--
-- Fires when the voucher is created on a non-working day (weekends and
-- public holidays per etc/calendar/<year>.txt; make-up working days 调休上班
-- count as working days) or in the night window params.night_from ..
-- params.night_to ("HH:MM", business zone, half-open: from 22:00:00 up to
-- but not including 06:00:00).  Both reasons go into one hit.
local WDAY = { [0] = "日", "一", "二", "三", "四", "五", "六" }

local function parse_minutes(hhmm)
  local h, m = hhmm:match("^(%d%d?):(%d%d)$")
  return tonumber(h) * 60 + tonumber(m)
end

-- The params rarely change: each "HH:MM" is parsed once per state.
local minutes_of = {}
local function minutes(hhmm)
  local m = minutes_of[hhmm]
  if m == nil then
    m = parse_minutes(hhmm)
    minutes_of[hhmm] = m
  end
  return m
end

local function in_window(m, from, to)
  if from <= to then
    return m >= from and m < to
  end
  return m >= from or m < to
end

return {
  id = "off_hours",
  name = "非工作时间支付",
  level = "yellow",
  on = { "voucher.created" },
  params = { night_from = "22:00", night_to = "06:00" },
  description = "凭证在非工作日（周末、法定节假日，调休上班日除外）或夜间（默认 22:00–06:00）生成。",
  check = function(v, ctx)
    local now = ctx.now()
    local t = ctx.time(now)
    local reasons -- made for the first reason
    local holiday = not ctx.is_workday(now)
    if holiday then
      reasons = { ("非工作日（周%s）"):format(WDAY[t.wday]) }
    end
    local m = t.hour * 60 + t.min
    local night = in_window(m, minutes(ctx.params.night_from), minutes(ctx.params.night_to))
    if night then
      reasons = reasons or {}
      reasons[#reasons + 1] = ("夜间 %s–%s"):format(ctx.params.night_from, ctx.params.night_to)
    end
    if reasons == nil then
      return nil
    end
    local at = ("%s %02d:%02d:%02d"):format(ctx.date(now), t.hour, t.min, t.sec)
    return {
      message = ("凭证生成于 %s，属%s，支付金额 %s 元"):format(at, table.concat(reasons, "、"),
        ctx.yuan(v.amount)),
      details = { amount = v.amount, non_workday = holiday, night = night },
    }
  end,
}
