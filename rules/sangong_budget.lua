-- sangong_budget (yellow / red): 三公经费支出接近或超过预算.
--
-- For a voucher on a 三公 econ_class (params.codes_list): the unit's spend
-- this calendar year (business zone, 1 January 00:00 up to this voucher) on
-- all 三公 codes, including this voucher, is compared with the allocated
-- amount of the unit's indicators of that year flagged `sangong`
-- (ctx.allocated_by_flag).  Red when spend > 100 % of it, yellow when
-- spend >= params.warn_pct percent (integer percent, default 90).  With
-- nothing allocated the share is undefined and the rule is silent: 三公
-- spending from an indicator without the flag is sangong_diversion's case.
-- Shares are compared in integers (spend * 100 >= warn_pct * allocated),
-- never as floats.
local function sorted_keys(set)
  local out = {}
  for k in pairs(set) do out[#out + 1] = k end
  table.sort(out)
  return out
end

local function pct_text(spend, allocated)
  -- one decimal, integer arithmetic, rounded half up
  local tenths = (spend * 1000 + allocated // 2) // allocated
  return ("%d.%d%%"):format(tenths // 10, tenths % 10)
end

return {
  id = "sangong_budget",
  name = "三公经费支出接近或超过预算",
  level = "yellow",
  on = { "voucher.created" },
  params = { codes_list = "sangong_codes", warn_pct = 90 },
  when = { econ_class = { list = "codes_list" } },
  description = "单位本年三公经费支出（含本笔）达到三公指标下达额的预警比例（默认 90%）为黄色，超过 100% 为红色。",
  check = function(v, ctx)
    local codes = ctx.list(ctx.params.codes_list)
    if v.econ_class == nil or not codes[v.econ_class] then
      return nil
    end
    local now = ctx.now()
    local year = ctx.time(now).year
    local since = ctx.parse_time(("%04d-01-01"):format(year))
    local h = ctx.history { unit = v.unit_code, econ_classes = sorted_keys(codes),
                            since = since, ["until"] = now }
    local spend = h.total + v.amount
    local allocated = ctx.allocated_by_flag(v.unit_code, year, "sangong")
    if allocated <= 0 then
      return nil
    end
    local details = { amount = v.amount, spend = spend, allocated = allocated,
                      warn_pct = ctx.params.warn_pct }
    if spend > allocated then
      return {
        level = "red",
        message = ("单位 %s %d 年三公经费支出 %s 元（含本笔 %s 元）超过三公指标 %s 元（%s）"):format(
          v.unit_code, year, ctx.yuan(spend), ctx.yuan(v.amount), ctx.yuan(allocated),
          pct_text(spend, allocated)),
        details = details,
        key = ("%d:over"):format(year),
      }
    end
    if spend * 100 >= ctx.params.warn_pct * allocated then
      return {
        level = "yellow",
        message = ("单位 %s %d 年三公经费支出 %s 元（含本笔 %s 元）已达三公指标 %s 元的 %s，预警线 %d%%"):format(
          v.unit_code, year, ctx.yuan(spend), ctx.yuan(v.amount), ctx.yuan(allocated),
          pct_text(spend, allocated), ctx.params.warn_pct),
        details = details,
        key = ("%d:warn"):format(year),
      }
    end
    return nil
  end,
}
