-- payroll_over_indicator (red): 工资发放超指标余额或指标无工资标识.
--
-- On payroll.run, only for the part that completes the run (v.complete):
-- the run's total net (v.total_net, all parts) > the available balance of
-- its indicator before the run is paid, or the indicator lacks the `salary`
-- flag (an unknown indicator lacks it too).  One hit; `key` is "balance"
-- when over the balance (the message also notes a missing flag), else
-- "flag".
return {
  id = "payroll_over_indicator",
  name = "工资发放超指标或指标性质不符",
  level = "red",
  on = { "payroll.run" },
  params = {},
  description = "工资批次实发合计超过所用指标可用余额，或该指标没有工资（salary）标识。",
  check = function(v, ctx)
    if not v.complete then
      return nil
    end
    local total = v.total_net or 0
    local ind = ctx.indicator(v.indicator_id)
    if ind == nil then
      return {
        message = ("工资批次 %s 实发合计 %s 元，所用指标 %s 不存在"):format(v.run_id, ctx.yuan(total),
          v.indicator_id or ""),
        details = { total_net = total },
        key = "flag",
      }
    end
    local no_flag = not (ind.flags and ind.flags.salary)
    if total > ind.available then
      local msg = ("工资批次 %s 实发合计 %s 元超过指标 %s 可用余额 %s 元"):format(v.run_id,
        ctx.yuan(total), v.indicator_id, ctx.yuan(ind.available))
      if no_flag then
        msg = msg .. "，且该指标没有工资标识"
      end
      return { message = msg, details = { total_net = total, available = ind.available },
               key = "balance" }
    end
    if no_flag then
      return {
        message = ("工资批次 %s 实发合计 %s 元从没有工资标识的指标 %s 发放"):format(v.run_id,
          ctx.yuan(total), v.indicator_id),
        details = { total_net = total, available = ind.available },
        key = "flag",
      }
    end
    return nil
  end,
}
