local function sub(payout, at, kind, emp)
  return fx.subsidy{ payout_id = payout, occurred_at = at, paid_at = at, kind = kind or "取暖补贴",
                     emp_id = emp or "E0001" }
end

return {
  { name = "hit: the same kind twice in June",
    events = { sub("BT2024-0001", "2024-06-05T10:00:00+08:00"),
               sub("BT2024-0002", "2024-06-28T10:00:00+08:00") },
    expect = { { level = "orange", subject = "BT2024-0002", match = "已领取“取暖补贴”1 次" } } },
  { name = "near miss: the next month",
    events = { sub("BT2024-0003", "2024-06-30T23:59:59+08:00"),
               sub("BT2024-0004", "2024-07-01T00:00:00+08:00") },
    expect = {} },
  { name = "excluded: another kind in the same month",
    events = { sub("BT2024-0005", "2024-06-05T10:00:00+08:00"),
               sub("BT2024-0006", "2024-06-06T10:00:00+08:00", "防暑降温费") },
    expect = {} },
  { name = "excluded: another person",
    events = { sub("BT2024-0007", "2024-06-05T10:00:00+08:00"),
               sub("BT2024-0008", "2024-06-06T10:00:00+08:00", nil, "E0002") },
    expect = {} },
}
