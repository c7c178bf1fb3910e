#!/usr/bin/env python3
"""city.py - a deterministic sample city for fundwatch.

Writes JSON Lines in the shape `fundwatch replay` and the publisher read,
one inbound message per line:

    {"subject": "fiscal.voucher.101001", "data": {...}}

The city looks like 三门峡市: about 60 budget units grouped by department,
a year of budget indicators (allocations in January, adjustments and
transfers in spring), the previous month's payroll for every staff member,
then one business day: payroll runs, a few thousand payment vouchers with
their flow (created -> signed -> sent -> paid, some returned or cancelled),
card reimbursements and subsidy payouts.  A few dozen violations of the
standard rule pack and a handful of malformed messages are planted among
clean traffic; `--list-planted` names them.

Everything comes from random.Random(seed) and the arguments: the same
arguments give a byte-identical file.  Standard library only.  See
bench/city_README.md.
"""

import argparse
import datetime as dt
import json
import os
import random
import re
import sys
from collections import Counter, defaultdict

TZ = "+08:00"
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)
DAY = dt.timedelta(days=1)

# --------------------------------------------------------------------------
# Thresholds of the standard rule pack (/work/shared/spec/rules.md), in fen.
# The generator keeps normal traffic clear of them and the verifier
# (predict_hits) uses them to say which messages should raise which alert.
# --------------------------------------------------------------------------
CATCHALL_ECON = {"39999", "30299", "31099"}
LARGE_INDIVIDUAL = 5_000_000
VERY_LARGE = 1_000_000_000
CASH_SINGLE, CASH_MONTH = 2_000_000, 5_000_000
CARD_MANDATORY = {"30201", "30202", "30207", "30211", "30213", "30215", "30216", "30217", "30231"}
CARD_CAP = 5_000_000
SANGONG_ECON = {"30212", "30217", "30231", "31013"}
SANGONG_WORDS = ("接待", "宴请", "招待", "车辆")
SANGONG_WARN_PCT = 90
VAGUE_MIN = 4
VAGUE_WORDS = {"支付", "付款", "其他", "费用", "货款"}
SENSITIVE_WORDS = ("礼品", "购物卡", "会员卡", "烟", "酒", "会所", "娱乐", "按摩", "洗浴", "足疗",
                   "高尔夫", "旅游", "风景区", "纪念品", "高档")
SENSITIVE_MIN = 100_000
SPLIT_N, SPLIT_DAYS, SPLIT_L = 3, 7, 5_000_000
DUP_DAYS = 3
Q4_ECON = {"30215", "30217", "30231"}
Q4_WORDS = ("预付", "预存", "充值")
Q4_MIN = 1_000_000
UNION_MIN = 1_000_000
BONUS_WORDS = ("奖", "补", "贴", "加班", "慰问")
STUCK_HOURS = 48
RETURNED_N, RETURNED_DAYS = 3, 30
RUSH_PCT = 50
RETIRE_AGE = 60
JUMP_PCT, JUMP_MIN = 30, 200_000
REIMBURSE_LARGE = 2_000_000

PART_BYTES = 900_000
MONEY_RE = re.compile(r"^-?\d+(\.\d{1,2})?$")
TIME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$")

# --------------------------------------------------------------------------
# The city's budget units: (code, name, func_class, staff weight).
# The first 60 are the default city; the rest are used with --units > 60.
# --------------------------------------------------------------------------
UNIT_CATALOG = [
    ("101001", "三门峡市教育局", "2050101", 1.0),
    ("101002", "三门峡市第一高级中学", "2050204", 4.0),
    ("101003", "三门峡市第二高级中学", "2050204", 3.5),
    ("101004", "三门峡市实验高级中学", "2050204", 3.0),
    ("101005", "三门峡市外国语高级中学", "2050204", 2.5),
    ("101006", "三门峡市第一初级中学", "2050203", 2.5),
    ("101007", "三门峡市实验小学", "2050202", 2.0),
    ("101008", "三门峡市特殊教育学校", "2050701", 0.6),
    ("101009", "三门峡市中等专业学校", "2050302", 2.0),
    ("101010", "三门峡市直属机关幼儿园", "2050201", 0.8),
    ("102001", "三门峡市公安局", "2040201", 21.0),
    ("102002", "三门峡市公安局湖滨分局", "2040201", 5.0),
    ("102003", "三门峡市公安局交通警察支队", "2040201", 4.0),
    ("102004", "三门峡市公安局经济技术开发区分局", "2040201", 2.0),
    ("102005", "三门峡市公安局看守所", "2040201", 1.2),
    ("103001", "三门峡市卫生健康委员会", "2100101", 1.0),
    ("103002", "三门峡市疾病预防控制中心", "2100401", 1.2),
    ("103003", "三门峡市卫生健康监督所", "2100402", 0.6),
    ("103004", "三门峡市妇幼保健院", "2100403", 1.5),
    ("103005", "三门峡市急救中心", "2100405", 0.5),
    ("104001", "三门峡市财政局", "2010601", 1.2),
    ("104002", "三门峡市财政国库支付中心", "2010650", 0.4),
    ("104003", "三门峡市公共资源交易中心", "2010650", 0.4),
    ("105001", "三门峡市民政局", "2080201", 0.8),
    ("105002", "三门峡市社会福利院", "2081002", 0.6),
    ("106001", "三门峡市人力资源和社会保障局", "2080101", 1.0),
    ("106002", "三门峡市社会保险中心", "2080109", 0.8),
    ("106003", "三门峡市公共就业服务中心", "2080111", 0.5),
    ("107001", "三门峡市住房和城乡建设局", "2120101", 1.0),
    ("107002", "三门峡市城市管理局", "2120104", 2.0),
    ("107003", "三门峡市市政设施事务中心", "2120399", 1.0),
    ("108001", "三门峡市交通运输局", "2140101", 0.8),
    ("108002", "三门峡市公路事业发展中心", "2140106", 1.5),
    ("108003", "三门峡市交通运输综合行政执法支队", "2140101", 0.8),
    ("109001", "三门峡市农业农村局", "2130101", 0.9),
    ("109002", "三门峡市农业科学院", "2130106", 0.6),
    ("109003", "三门峡市动物疫病预防控制中心", "2130108", 0.4),
    ("110001", "三门峡市文化广电和旅游局", "2070101", 0.7),
    ("110002", "三门峡市图书馆", "2070104", 0.4),
    ("110003", "三门峡市博物馆", "2070205", 0.4),
    ("111001", "三门峡市市场监督管理局", "2013801", 1.5),
    ("111002", "三门峡市检验检测中心", "2013850", 0.6),
    ("112001", "三门峡市生态环境局", "2110101", 0.8),
    ("112002", "三门峡市生态环境监测中心", "2110104", 0.5),
    ("113001", "三门峡市自然资源和规划局", "2200101", 1.0),
    ("113002", "三门峡市不动产登记中心", "2200109", 0.5),
    ("113003", "三门峡市林业发展中心", "2130201", 0.6),
    ("114001", "三门峡市水利局", "2130301", 0.6),
    ("115001", "三门峡市应急管理局", "2240101", 0.6),
    ("116001", "三门峡市司法局", "2040601", 0.7),
    ("117001", "三门峡市人民政府办公室", "2010301", 0.9),
    ("117002", "三门峡市机关事务管理局", "2010350", 0.7),
    ("118001", "三门峡市发展和改革委员会", "2010401", 0.7),
    ("118002", "三门峡市统计局", "2010501", 0.4),
    ("119001", "三门峡市审计局", "2010801", 0.5),
    ("120001", "中共三门峡市纪律检查委员会", "2011101", 0.9),
    ("121001", "三门峡市退役军人事务局", "2082801", 0.4),
    ("122001", "三门峡市科学技术局", "2060101", 0.4),
    ("122002", "三门峡市工业和信息化局", "2150501", 0.5),
    ("123001", "三门峡市商务局", "2160201", 0.5),
    # extras
    ("101011", "三门峡市教育科学研究所", "2050101", 0.3),
    ("103006", "三门峡市中心血站", "2100406", 0.5),
    ("105003", "三门峡市救助管理站", "2082002", 0.3),
    ("107004", "三门峡市园林绿化中心", "2120501", 0.8),
    ("110004", "三门峡市群众艺术馆", "2070109", 0.3),
    ("114002", "三门峡市水文水资源勘测中心", "2130310", 0.4),
    ("115002", "三门峡市应急救援保障中心", "2240106", 0.3),
    ("116002", "三门峡市公证处", "2040604", 0.3),
]
BIG_PROJECT_DEPTS = {"107", "108", "114"}  # may hold 31005 基础设施建设 projects

# Econ classes used by ordinary vouchers: weight, amount model (median yuan,
# spread, min yuan, max yuan), payee sources, purposes.
ECON = {
    "30201": (18, (2500, 0.8, 150, 48000), ["office"],
              ["办公用品采购", "采购A4复印纸{n}箱", "购置硒鼓墨盒", "采购档案盒及文件袋", "购买办公桌椅配件",
               "采购打印耗材", "购置会议室用品", "购买办公用纸及文具"]),
    "30202": (6, (4000, 0.8, 300, 45000), ["print"],
              ["印刷宣传资料", "文件资料印刷费", "印制工作手册{n}册", "印刷政策宣传折页", "年度工作报告印刷",
               "印制档案封皮"]),
    "30207": (4, (1800, 0.7, 100, 30000), ["telecom", "courier"],
              ["{m}月固定电话及宽带费", "{m}月专线网络租用费", "邮寄公文资料费", "{m}月政务外网通信费"]),
    "30211": (6, (3000, 0.7, 300, 40000), ["travel"],
              ["差旅费结算（机票）", "出差火车票费用结算", "差旅住宿费结算", "赴郑州出差交通费结算"]),
    "30213": (10, (6000, 0.9, 300, 200000), ["repair"],
              ["设备维修", "办公楼空调维修", "电梯维护保养费", "办公楼屋面防水维修", "计算机及网络设备维护",
               "监控系统维修", "供暖管道维修", "门窗维修更换"]),
    "30215": (3, (15000, 0.7, 2000, 120000), ["meeting"],
              ["全市{topic}工作会议会场租赁", "{topic}工作推进会会务费", "业务工作座谈会会务服务费"]),
    "30216": (4, (20000, 0.8, 2000, 200000), ["training"],
              ["{topic}业务培训费", "干部能力提升培训班费用", "新入职人员岗前培训费", "专业技术人员继续教育培训费"]),
    "30209": (4, (40000, 0.7, 3000, 400000), ["property"],
              ["{q}季度物业管理费", "办公区保洁服务费", "{m}月物业服务费", "安保服务费（{m}月）"]),
    "30205": (2, (3000, 0.7, 300, 40000), ["water"], ["{m}月办公楼水费", "{m}月用水费用"]),
    "30206": (3, (12000, 0.8, 1000, 150000), ["power"], ["{m}月办公楼电费", "{m}月用电费用"]),
    "30214": (2, (20000, 0.8, 2000, 200000), ["lease"],
              ["档案库房租赁费", "临时办公用房租赁费", "会议设备租赁费"]),
    "30218": (5, (8000, 0.9, 300, 200000), ["material"],
              ["实验室耗材采购", "采购检测试剂", "专用材料采购", "采购防疫消杀用品", "采购教学实验器材"]),
    "30226": (7, (3000, 0.7, 300, 30000), ["individual", "individual", "labor"],
              ["专家评审劳务费", "临时聘用人员劳务费", "课题咨询劳务费", "监考劳务费", "资料整理劳务费",
               "翻译校对劳务费"]),
    "30227": (6, (60000, 0.9, 5000, 900000), ["consult"],
              ["委托第三方审计服务费", "{topic}规划编制委托费", "委托检测服务费", "法律顾问服务费",
               "委托第三方评估费", "信息系统运维服务费"]),
    "31002": (6, (25000, 0.9, 2000, 600000), ["equipment", "office"],
              ["采购台式计算机{n}台", "购置打印复印一体机", "采购办公家具", "购置笔记本电脑{n}台", "采购投影设备"]),
    "31003": (3, (60000, 1.0, 3000, 2000000), ["special"],
              ["采购执法记录仪{n}台", "购置专业检测设备", "采购教学设备", "购置应急救援装备"]),
    "30217": (4, (1500, 0.6, 200, 9000), ["catering"],
              ["接待省{dept}检查组工作餐", "公务接待用餐费用", "接待外地考察团工作餐"]),
    "30231": (5, (1200, 0.8, 150, 20000), ["fuel", "insurance", "autorepair"],
              ["公务用车加油费", "公务用车保险费", "公务用车维修保养", "公务用车年检及过路费"]),
    "30212": (0.5, (35000, 0.5, 10000, 90000), ["abroad"],
              ["赴{country}学习考察国际旅费", "因公出国（境）团组国际机票"]),
    "31005": (1, (800000, 0.8, 100000, 5000000), ["construction"],
              ["{road}道路改造工程进度款", "{road}排水管网改造工程款", "{road}人行道提升工程进度款"]),
}
ECON_NAME = {
    "30101": "基本工资", "30201": "办公费", "30202": "印刷费", "30205": "水费", "30206": "电费",
    "30207": "邮电费", "30209": "物业管理费", "30211": "差旅费", "30212": "因公出国（境）费用",
    "30213": "维修（护）费", "30214": "租赁费", "30215": "会议费", "30216": "培训费", "30217": "公务接待费",
    "30218": "专用材料费", "30226": "劳务费", "30227": "委托业务费", "30228": "工会经费",
    "30231": "公务用车运行维护费", "30299": "其他商品和服务支出", "30305": "生活补助",
    "31002": "办公设备购置", "31003": "专用设备购置", "31005": "基础设施建设",
}
ALWAYS_ECON = ["30201", "30202", "30207", "30211", "30213", "30226", "30209"]
OPTIONAL_ECON = ["30205", "30206", "30214", "30215", "30216", "30218", "30227", "31002", "31003"]
PROJECT_ECON = ["30227", "31002", "31003", "30218"]

TOPICS = ["安全生产", "综合业务", "年度重点", "党风廉政建设", "政务公开", "统计调查", "信息化建设", "依法行政"]
DEPTS = ["财政厅", "教育厅", "审计厅", "卫健委", "应急管理厅", "发改委"]
COUNTRIES = ["德国", "新加坡", "日本", "法国"]
ROADS = ["崤山路", "六峰路", "黄河路", "上阳路", "大岭路", "和平路", "甘棠路", "文明路"]

TRADE_NAMES = (
    "恒达 鑫源 宏图 华信 博远 金鼎 瑞丰 天成 中原 豫西 崤函 函谷 天鹅 黄河 甘棠 虢州 仰韶 宝轮 鼎盛 新元 正泰 "
    "恒通 盛世 永昌 嘉禾 腾飞 卓越 锦程 启航 方圆 众诚 立信 信达 德润 弘毅 明远 东方 华夏 宇航 四方 广源 润泽 "
    "康达 安泰 和顺 盛源 晨曦 中天 远航 金桥 银河 蓝天 绿源 恒信 诚信 利民 惠民 丰泽 万通 百川 聚源 鸿运 鑫盛 "
    "宏达 亿通 凯旋 鹏程 汇通 同创 创新 智联 华宇 新华 大地 长城 昆仑 宏远 鼎立 凯达 金泰 佳和 宜居 天元 瑞祥 "
    "福瑞 祥和 兴旺 昌盛 振华 荣盛 嘉诚 新世纪 铭诚 睿达 峰华 函关 陕塬 灵山 弘康 致远 合众 精诚 泰和 "
    "通达 久安 博雅 广誉 宏业 鑫达 恒瑞 金源 天宇 华盛 力行 向阳 春晖 明德 清源 长青 卓信 达成 锐思"
).split()
REGIONS = ["三门峡", "三门峡市", "三门峡", "河南", "河南省", "灵宝市", "义马市", "渑池县", "陕州区", "洛阳", "郑州"]
INDUSTRY_WORDS = {
    "office": ["办公用品", "商贸", "文化用品", "办公设备"],
    "print": ["印务", "印刷", "彩印", "广告传媒"],
    "courier": ["快递服务", "物流"],
    "travel": ["商旅服务", "航空票务代理", "票务服务"],
    "repair": ["机电设备", "电梯工程", "空调工程", "建筑装饰工程", "信息技术", "防水工程"],
    "meeting": ["会议服务", "会展服务", "宾馆"],
    "training": ["教育咨询", "职业技能培训", "管理咨询"],
    "property": ["物业服务", "物业管理", "保安服务"],
    "labor": ["劳务派遣", "人力资源服务"],
    "consult": ["会计师事务所", "工程咨询", "规划设计", "信息技术", "检测技术", "律师事务所", "资产评估"],
    "material": ["医疗器械", "科教仪器", "实验设备", "生物科技"],
    "lease": ["置业", "房屋租赁", "设备租赁"],
    "equipment": ["电子科技", "计算机", "智能科技", "办公家具", "数码科技"],
    "special": ["警用装备", "安防科技", "医疗设备", "仪器仪表", "应急装备"],
    "catering": ["餐饮管理", "宾馆", "饭店"],
    "autorepair": ["汽车维修服务", "汽车服务"],
    "abroad": ["国际旅行社"],
    "construction": ["建筑工程", "路桥工程", "市政工程", "建设工程"],
}
FIXED_PAYEES = {
    "telecom": ["中国电信股份有限公司三门峡分公司", "中国移动通信集团河南有限公司三门峡分公司",
                "中国联合网络通信有限公司三门峡市分公司", "中国邮政集团有限公司三门峡市分公司"],
    "water": ["三门峡市供水有限责任公司"],
    "power": ["国网河南省电力公司三门峡供电公司"],
    "fuel": ["中国石化销售股份有限公司河南三门峡石油分公司", "中国石油天然气股份有限公司河南三门峡销售分公司"],
    "insurance": ["中国人民财产保险股份有限公司三门峡市分公司", "中国平安财产保险股份有限公司三门峡中心支公司",
                  "中国太平洋财产保险股份有限公司三门峡中心支公司"],
}
FIXED_NAMES = {n for names in FIXED_PAYEES.values() for n in names}
# Banks: name, corporate account (prefix, total length), personal card BIN.
BANKS = [
    ("中国工商银行", "1715", 19, "622202"),
    ("中国建设银行", "41050166", 20, "621700"),
    ("中国农业银行", "165201", 15, "622848"),
    ("中国银行", "2536", 12, "621661"),
    ("中国邮政储蓄银行", "941015", 19, "621799"),
    ("中原银行", "4110", 20, "623595"),
    ("三门峡湖滨农村商业银行", "8101", 18, "623059"),
    ("交通银行", "4131", 21, "622260"),
]
BRANCHES = ["湖滨支行", "崤山路支行", "六峰路支行", "黄河路支行", "开发区支行", "上阳路支行", "大岭路支行", "和平路支行"]

SURNAMES = list("王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘"
                "杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文")
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红鹏建国志海燕文辉力斌宇浩凯健俊帆帅旭宁龙林欣婷雪琳晨"
             "阳佳怡博颖倩瑞鑫昊梦璐丹慧蕾宏峰亮晓春光新永成兵东波飞庆荣彬立金晶莉琴云梅兰婧然悦思嘉泽轩子雨航哲睿铭诚")
ID_REGIONS = ["411202"] * 6 + ["411203"] * 3 + ["411221", "411224", "411281", "411282", "411282",
                                               "410302", "410105", "410305", "140802", "610502"]
PHONE_PREFIXES = ["130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155",
                  "156", "157", "158", "159", "166", "173", "177", "180", "181", "182", "185", "186", "187",
                  "188", "189", "191", "198", "199"]
POSITION_PAY = [2050, 2230, 2420, 2650, 2940, 3280, 3710, 4270, 4910, 5680]
# 2019 monthly withholding table: (upper bound of taxable, rate %, quick deduction), in fen.
TAX_TABLE = [(300000, 3, 0), (1200000, 10, 21000), (2500000, 20, 141000), (3500000, 25, 266000),
             (5500000, 30, 441000), (8000000, 35, 716000), (None, 45, 1516000)]
INSURANCE = [("养老保险", 8), ("职业年金", 4), ("医疗保险", 2), ("住房公积金", 12)]
SUBSIDY_KINDS = [("交通补贴", [50000, 60000, 80000, 100000], 50), ("通讯补贴", [10000, 15000, 20000, 30000], 40),
                 ("取暖补贴", [180000, 220000], 10)]
REIMB_SUMMARIES = ["差旅费", "差旅费", "办公用品", "会议费", "培训费", "印刷费", "邮寄费", "公务接待费"]
RETURN_REASONS = ["收款人账号户名不符", "收款账户已销户", "收款账户状态异常", "收款行行号错误"]
CANCEL_REASONS = ["单位申请撤销", "收款信息有误，重新录入", "预算科目选择错误", "重复录入"]


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------
def yuan(fen):
    """Integer fen -> yuan string with two decimals (never via a float)."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def fen_of(s):
    """Yuan string -> integer fen, exactly."""
    neg = s.startswith("-")
    if neg:
        s = s[1:]
    whole, _, frac = s.partition(".")
    v = int(whole) * 100 + int((frac + "00")[:2])
    return -v if neg else v


def ts(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S") + TZ


def parse_ts(s):
    """RFC 3339 with +08:00 -> naive local datetime (the generator only writes +08:00)."""
    m = TIME_RE.match(s)
    if not m:
        raise ValueError("not RFC 3339")
    t = dt.datetime.fromisoformat(s[:19])
    off = m.group(6)
    if off != TZ:
        sign = 1 if off[0] == "+" else -1
        if off == "Z":
            sign, hh, mm = 1, 0, 0
        else:
            hh, mm = int(off[1:3]), int(off[4:6])
        t = t - sign * dt.timedelta(hours=hh, minutes=mm) + dt.timedelta(hours=8)
    return t


def id_check_digit(first17):
    """GB 11643 / ISO 7064 MOD 11-2 check character."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    s = sum(int(c) * w for c, w in zip(first17, weights))
    return "10X98765432"[s % 11]


def id_valid(id_no):
    if not re.fullmatch(r"\d{17}[\dX]", id_no or ""):
        return False
    if id_check_digit(id_no[:17]) != id_no[17]:
        return False
    try:
        dt.date(int(id_no[6:10]), int(id_no[10:12]), int(id_no[12:14]))
    except ValueError:
        return False
    return True


def age_on(birth, day):
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def month_end(year, month):
    nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
    return nxt - DAY


def prev_month(year, month):
    return (year - 1, 12) if month == 1 else (year, month - 1)


def pit(taxable):
    """Monthly individual income tax in fen (2019 table), rounded half up."""
    if taxable <= 0:
        return 0
    for upper, rate, quick in TAX_TABLE:
        if upper is None or taxable <= upper:
            return max(0, (taxable * rate + 50) // 100 - quick)
    raise AssertionError


def has_any(text, words):
    return any(w in text for w in words)


class Calendar:
    """Workdays from etc/calendar/YYYY.txt (holiday / make-up workday lines)."""

    def __init__(self, path):
        self.special = {}
        if path and os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                if not re.fullmatch(r"\d{4}\.txt", name):
                    continue
                with open(os.path.join(path, name), encoding="utf-8") as f:
                    for line in f:
                        parts = line.split()
                        if len(parts) >= 2 and not parts[0].startswith("#") and parts[1] in ("holiday", "workday"):
                            self.special[dt.date.fromisoformat(parts[0])] = parts[1] == "workday"

    def is_workday(self, d):
        if d in self.special:
            return self.special[d]
        return d.weekday() < 5

    def next_workday(self, d):
        while not self.is_workday(d):
            d += DAY
        return d


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------
class Unit:
    def __init__(self, code, name, func, weight):
        self.code, self.name, self.func, self.weight = code, name, func, weight
        self.dept = code[:3]
        self.staff = []
        self.indicators = []
        self.salary = None
        self.payer_account = self.payer_bank = self.own_account = None
        self.no_sangong_traffic = False
        self.last_seq = 0

    def next_seq(self):
        self.last_seq += 1
        return self.last_seq


class Indicator:
    def __init__(self, unit, econ, flags=(), project=None, func=None, fund_source="一般公共预算"):
        self.unit = unit
        self.id = f"ZB{YEAR}-{unit.code}-{unit.next_seq():04d}"
        self.econ = econ
        self.func = func or unit.func
        self.flags = list(flags)
        self.project = project
        self.fund_type = "1"
        self.fund_source = fund_source
        self.spend = 0          # planned voucher / payroll spend on it, fen
        self.final = None       # allocated at the end of the scenario, fen
        self.base = 0           # minimum allocation, fen
        self.voucher_ok = True  # ordinary vouchers may use it
        self.fixed = False      # allocation set by a plant; no random adjustments
        self.first_use = None   # time of the first voucher created on it


class Company:
    def __init__(self, name, account, bank, ptype="company"):
        self.name, self.account, self.bank, self.type = name, account, bank, ptype


class Voucher:
    def __init__(self, no, unit, ind, amount, t, payee, purpose):
        self.no, self.unit, self.ind, self.amount, self.t = no, unit, ind, amount, t
        self.payee, self.purpose = payee, purpose
        self.indicator_id = ind.id if ind else None
        self.econ = ind.econ if ind else None
        self.func = ind.func if ind else unit.func
        self.project = ind.project if ind else None
        self.settle = "transfer"
        self.pay_method = "direct" if amount >= 10_000_000 else "authorized"
        self.events = []  # (event, time, extra dict)
        self.payer = True
        self.planted = None


class Msg:
    __slots__ = ("t", "seq", "subject", "data", "kind", "plant", "dlq", "line")

    def __init__(self, t, seq, subject, data, kind):
        self.t, self.seq, self.subject, self.data, self.kind = t, seq, subject, data, kind
        self.plant = None  # (rule, subject kind, subject id)
        self.dlq = None    # (dlq kind, field)
        self.line = 0


YEAR = 2024  # set from --day before the model is built


class City:
    def __init__(self, args, calendar):
        self.a = args
        self.cal = calendar
        self.rng = random.Random(args.seed)
        self.day = args.day
        self.seq = 0
        self.msgs = []
        self.accounts = set()
        self.phones = set()
        self.ids = set()
        self.company_names = set()
        self.pools = defaultdict(list)
        self.pair_count = Counter()     # (unit, account) -> vouchers today
        self.triples = set()            # (unit, account, amount)
        self.returned_accounts = set()
        self.vouchers = []
        self.voucher_seq = self.rng.randrange(100000, 200000)
        self.project_seq = 0
        self.planted = []               # Msg objects with .plant set
        self.cash_total = Counter()     # unit -> cash spend this month
        self.doc_seq = 0
        self.bank_ref_seq = 0

    # -- identities ---------------------------------------------------------
    def digits(self, n):
        return "".join(self.rng.choice("0123456789") for _ in range(n))

    def new_corp_account(self, bank=None):
        while True:
            b = bank or self.rng.choice(BANKS)
            acct = b[1] + self.digits(b[2] - len(b[1]))
            if acct not in self.accounts:
                self.accounts.add(acct)
                return acct, f"{b[0]}三门峡{self.rng.choice(BRANCHES)}"

    def new_card(self):
        while True:
            b = self.rng.choice(BANKS)
            acct = b[3] + self.digits(13)
            if acct not in self.accounts:
                self.accounts.add(acct)
                return acct, f"{b[0]}三门峡{self.rng.choice(BRANCHES)}"

    def new_phone(self):
        while True:
            p = self.rng.choice(PHONE_PREFIXES) + self.digits(8)
            if p not in self.phones:
                self.phones.add(p)
                return p

    def person_name(self):
        n = 1 if self.rng.random() < 0.3 else 2
        return self.rng.choice(SURNAMES) + "".join(self.rng.choice(GIVEN) for _ in range(n))

    def new_id(self, birth, male=None):
        if male is None:
            male = self.rng.random() < 0.5
        while True:
            seq2 = self.rng.randrange(0, 100)
            g = self.rng.randrange(0, 10, 2) + (1 if male else 0)
            first17 = f"{self.rng.choice(ID_REGIONS)}{birth:%Y%m%d}{seq2:02d}{g}"
            id_no = first17 + id_check_digit(first17)
            if id_no not in self.ids:
                self.ids.add(id_no)
                return id_no

    def company(self, industry):
        if industry in FIXED_PAYEES:
            names = FIXED_PAYEES[industry]
            pool = self.pools[industry]
            if not pool:
                for n in names:
                    acct, bank = self.new_corp_account()
                    pool.append(Company(n, acct, bank))
            return None
        while True:
            word = self.rng.choice(INDUSTRY_WORDS[industry])
            region = self.rng.choice(REGIONS)
            trade = self.rng.choice(TRADE_NAMES)
            if word.endswith("事务所"):
                name = f"{region}{trade}{word}" + ("有限公司" if word.startswith("会计") else "")
            else:
                suffix = self.rng.choice(["有限公司", "有限公司", "有限责任公司", "股份有限公司"])
                name = f"{region}{trade}{word}{suffix}"
            if name in self.company_names or has_any(name, SENSITIVE_WORDS + SANGONG_WORDS + ("工会",)):
                continue
            self.company_names.add(name)
            acct, bank = self.new_corp_account()
            c = Company(name, acct, bank)
            self.pools[industry].append(c)
            return c

    def pick_payee(self, unit, industry, amount):
        """A payee this unit has paid at most once today, for a new amount."""
        if industry == "individual":
            acct, bank = self.new_card()
            return Company(self.person_name(), acct, bank, "individual")
        if industry in FIXED_PAYEES:
            self.company(industry)
        pool = self.pools[industry]
        for _ in range(12):
            if not pool:
                break
            c = self.rng.choice(pool)
            if self.pair_count[(unit.code, c.account)] < 2 and (unit.code, c.account, amount) not in self.triples:
                return c
        if industry in FIXED_PAYEES:
            return None
        return self.company(industry)

    # -- messages -------------------------------------------------------------
    def emit(self, t, kind, unit_code, data, subject=None):
        self.seq += 1
        m = Msg(t, self.seq, subject or f"fiscal.{kind}.{unit_code}", data, kind)
        self.msgs.append(m)
        return m

    def plant(self, m, rule, skind, sid):
        m.plant = (rule, skind, sid)
        self.planted.append(m)

    def next_doc(self):
        self.doc_seq += 1
        return f"三财预〔{YEAR}〕{self.doc_seq}号"

    # -- units and people -----------------------------------------------------
    def build_units(self):
        n = self.a.units
        cat = list(UNIT_CATALOG)
        k = 1
        while len(cat) < n:  # synthesize more schools
            cat.append((f"1012{k:02d}", f"三门峡市第{k + 1}小学", "2050202", 1.2))
            k += 1
        chosen = sorted(cat[:n], key=lambda u: u[0])
        self.units = [Unit(*u) for u in chosen]
        for u in self.units:
            u.payer_account, u.payer_bank = self.new_corp_account(BANKS[1])
            u.own_account, _ = self.new_corp_account(BANKS[1])
        # staff counts by largest remainder
        total_w = sum(u.weight for u in self.units)
        raw = [self.a.staff * u.weight / total_w for u in self.units]
        counts = [max(5, int(r)) for r in raw]
        diff = self.a.staff - sum(counts)
        order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - int(raw[i])), i))
        i = 0
        while diff > 0:
            counts[order[i % len(order)]] += 1
            diff -= 1
            i += 1
        while diff < 0:
            j = max(range(len(counts)), key=lambda x: (counts[x], -x))
            counts[j] -= 1
            diff += 1
        for u, c in zip(self.units, counts):
            u.nstaff = c
        # payroll_over_indicator is planted on the smallest unit
        self.short_unit = min(self.units, key=lambda u: (u.nstaff, u.code)) if self.a.plant else None

    def build_staff(self):
        cur_end = month_end(self.day.year, self.day.month)
        py, pm = prev_month(self.day.year, self.day.month)
        prev_end = month_end(py, pm)
        lo = dt.date(cur_end.year - RETIRE_AGE, cur_end.month, cur_end.day) + DAY  # < 60 at cur_end
        hi = dt.date(prev_end.year - 22, prev_end.month, min(prev_end.day, 28))      # >= 22 at prev_end
        span = (hi - lo).days
        for u in self.units:
            for i in range(u.nstaff):
                u.staff.append(self.new_person(u, i + 1, lo + DAY * self.rng.randrange(span + 1)))

    def new_person(self, u, n, birth, id_no=None):
        age = age_on(birth, self.day)
        lvl = min(9, max(0, (age - 22) // 4 + self.rng.randrange(-1, 2)))
        acct, _ = self.new_card()
        return {
            "emp_id": f"E{n:05d}", "name": self.person_name(), "birth": birth,
            "id_no": id_no or self.new_id(birth), "phone": self.new_phone(), "account": acct,
            "post": POSITION_PAY[lvl] * 100,
            "grade": (300 + (age - 22) * 55 + self.rng.randrange(0, 31) * 10) * 100,
            "allow": self.rng.randrange(210, 421) * 1000,
            "perf": self.rng.randrange(120, 321) * 1000,
            "unit": u,
        }

    # -- indicators -----------------------------------------------------------
    def build_indicators(self):
        for u in self.units:
            def add(econ, **kw):
                ind = Indicator(u, econ, **kw)
                u.indicators.append(ind)
                return ind

            u.salary = add("30101", flags=["salary"])
            u.salary.voucher_ok = False
            for e in ALWAYS_ECON:
                add(e)
            for e in OPTIONAL_ECON:
                if self.rng.random() < 0.6:
                    add(e)
            add("30217", flags=["sangong"])
            add("30231", flags=["sangong"])
            if self.rng.random() < 0.25:
                add("30212", flags=["sangong"])
            for _ in range(self.rng.choice([0, 0, 1, 1, 2])):
                self.add_project(u, add)
            if u.dept in BIG_PROJECT_DEPTS and self.rng.random() < 0.7:
                self.add_project(u, add, econ="31005")
            if self.rng.random() < 0.3:
                add("30228", flags=["union"]).voucher_ok = False
            if self.rng.random() < 0.3:
                add("30305", flags=["subsidy"]).voucher_ok = False
            for ind in u.indicators:
                ind.base = self.base_allocation(ind)

    def add_project(self, u, add, econ=None):
        self.project_seq += 1
        direct = self.rng.random() < 0.4
        econ = econ or self.rng.choice(PROJECT_ECON)
        return add(econ, project=f"P{YEAR}-{self.project_seq:04d}",
                   flags=["direct"] if direct else [],
                   fund_source="中央直达资金" if direct else "一般公共预算")

    def base_allocation(self, ind):
        r = self.rng
        if ind.econ == "31005":
            return r.randrange(300, 1500) * 1_000_000
        if ind.project:
            return r.randrange(20, 300) * 1_000_000
        if "sangong" in ind.flags:
            return r.randrange(6, 30) * 1_000_000
        if ind.econ in ("30228", "30305"):
            return r.randrange(5, 40) * 1_000_000
        return r.randrange(3, 40) * 1_000_000

    def dedicated_ind(self, u, econ, flags=(), allocation=None, project=True):
        """An indicator only a plant uses, with a fixed allocation."""
        code = None
        if project:
            self.project_seq += 1
            code = f"P{YEAR}-{self.project_seq:04d}"
        ind = Indicator(u, econ, flags=flags, project=code)
        ind.voucher_ok = False
        if allocation is not None:
            ind.final, ind.fixed = allocation, True
        ind.base = allocation or 0
        u.indicators.append(ind)
        return ind

    # -- vouchers -------------------------------------------------------------
    def next_voucher_no(self):
        self.voucher_seq += 1
        return f"ZF{YEAR}{self.voucher_seq:06d}"

    def amount_for(self, econ):
        med, spread, lo, hi = ECON[econ][1]
        while True:
            x = self.rng.lognormvariate(0, spread) * med
            if lo <= x <= hi:
                break
        fen = int(x * 100)
        r = self.rng.random()
        if r < 0.15:
            fen = fen // 10000 * 10000 or 10000
        elif r < 0.45:
            fen = fen // 100 * 100 or 100
        return fen

    def purpose_for(self, econ):
        tpl = self.rng.choice(ECON[econ][3])
        q = (self.day.month - 1) // 3 + 1
        return tpl.format(n=self.rng.randrange(2, 30), m=self.day.month, q="一二三四"[q - 1],
                          topic=self.rng.choice(TOPICS), dept=self.rng.choice(DEPTS),
                          country=self.rng.choice(COUNTRIES), road=self.rng.choice(ROADS))

    def work_time(self, day=None):
        """A created time in working hours with a morning and afternoon peak."""
        day = day or self.day
        r = self.rng.random()
        if r < 0.55:
            lo, hi = 8 * 60 + 30, 11 * 60 + 45
        elif r < 0.65:
            lo, hi = 11 * 60 + 45, 14 * 60 + 30
        else:
            lo, hi = 14 * 60 + 30, 17 * 60
        m = self.rng.randrange(lo, hi)
        return dt.datetime(day.year, day.month, day.day) + dt.timedelta(minutes=m, seconds=self.rng.randrange(60))

    def step(self, t, lo=2, hi=40):
        return t + dt.timedelta(minutes=self.rng.randrange(lo, hi), seconds=self.rng.randrange(60))

    def make_voucher(self, unit, ind, amount, t, payee, purpose, settle="transfer"):
        v = Voucher(self.next_voucher_no(), unit, ind, amount, t, payee, purpose)
        v.settle = settle
        if ind and (ind.project or amount >= 10_000_000):
            v.pay_method = "direct"
        if ind:
            ind.spend += amount
            if ind.first_use is None or t < ind.first_use:
                ind.first_use = t
        self.pair_count[(unit.code, payee.account)] += 1
        self.triples.add((unit.code, payee.account, amount))
        self.vouchers.append(v)
        return v

    def flow(self, v, kind="paid"):
        """Fill the events after created: paid | returned_sent | returned_paid | cancelled_<state> | none."""
        t = v.t
        ev = [("created", t, {})]
        if kind == "none":
            v.events = ev
            return
        if kind.startswith("cancelled"):
            stop = kind.split("_")[1]
            for e in ("signed", "sent"):
                if stop == "created" or (stop == "signed" and e == "sent"):
                    break
                t = self.step(t)
                ev.append((e, t, {}))
            t = self.step(t)
            ev.append(("cancelled", t, {"reason": self.rng.choice(CANCEL_REASONS)}))
            v.events = ev
            return
        t = self.step(t, 3, 45)
        ev.append(("signed", t, {}))
        t = self.step(t, 5, 50)
        ev.append(("sent", t, {}))
        if kind == "returned_sent":
            t = self.step(t, 10, 90)
            ev.append(("returned", t, {"reason": self.rng.choice(RETURN_REASONS)}))
            v.events = ev
            return
        t = self.step(t, 5, 60)
        self.bank_ref_seq += 1
        extra = {"bank_ref": f"{v.t:%Y%m%d}{self.bank_ref_seq:08d}"}
        if self.rng.random() < 0.3:
            extra["amount"] = yuan(v.amount)
        ev.append(("paid", t, extra))
        if kind == "returned_paid":
            t = self.step(t, 20, 120)
            ev.append(("returned", t, {"reason": self.rng.choice(RETURN_REASONS)}))
        v.events = ev

    def build_vouchers(self):
        units = [u for u in self.units]
        uweights = [1 + u.weight * 0.6 for u in units]
        n = self.a.vouchers
        made = 0
        guard = 0
        while made < n:
            guard += 1
            if guard > n * 50:
                raise SystemExit("city.py: cannot place vouchers (too few units/payees)")
            u = self.rng.choices(units, uweights)[0]
            inds = [i for i in u.indicators if i.voucher_ok and i.econ in ECON
                    and not (u.no_sangong_traffic and i.econ in SANGONG_ECON)]
            ws = [ECON[i.econ][0] * (1.5 if i.project else 1) for i in inds]
            ind = self.rng.choices(inds, ws)[0]
            amount = self.amount_for(ind.econ)
            source = self.rng.choice(ECON[ind.econ][2])
            payee = self.pick_payee(u, source, amount)
            if payee is None:
                continue
            t = self.work_time()
            purpose = self.purpose_for(ind.econ)
            settle = "transfer"
            if source == "individual" and amount <= 300000 and self.cash_total[u.code] + amount < 2_000_000 \
                    and self.rng.random() < 0.08:
                settle = "cash"
                self.cash_total[u.code] += amount
            elif payee.type == "company" and self.rng.random() < 0.01:
                settle = "check"
            v = self.make_voucher(u, ind, amount, t, payee, purpose, settle)
            made += 1
            r = self.rng.random()
            if r < 0.03 and payee.account not in self.returned_accounts:
                self.returned_accounts.add(payee.account)
                self.flow(v, self.rng.choice(["returned_sent", "returned_paid"]))
                ret_t = v.events[-1][1]
                # half the returned vouchers are issued again to a corrected account
                if self.rng.random() < 0.5 and payee.type == "company" and ret_t.hour < 17 and made < n \
                        and payee.name not in FIXED_NAMES:
                    acct, bank = self.new_corp_account()
                    fixed = Company(payee.name, acct, bank)
                    w = self.make_voucher(u, ind, amount, self.step(ret_t, 20, 60), fixed, purpose, settle)
                    self.flow(w)
                    made += 1
            elif r < 0.05:
                self.flow(v, self.rng.choice(["cancelled_created", "cancelled_signed", "cancelled_sent"]))
            else:
                self.flow(v)

    # -- payroll ----------------------------------------------------------------
    def payroll_line(self, p, period_idx, tweak=None):
        """One line; period_idx 0 = previous month, 1 = current.  tweak: dict of overrides."""
        tweak = tweak or {}
        perf = p["perf"]
        if period_idx == 1:
            perf += self.rng.randrange(-30, 31) * 1000
        perf += tweak.get("perf_add", 0)
        earnings = [("岗位工资", p["post"]), ("薪级工资", p["grade"]), ("津贴补贴", p["allow"]), ("绩效工资", perf)]
        gross = sum(a for _, a in earnings)
        base = p["post"] + p["grade"] + p["allow"]
        ded = [(n, (base * r + 50) // 100) for n, r in INSURANCE]
        insured = sum(a for _, a in ded)
        ded.append(("个人所得税", pit(gross - 500000 - insured)))
        net = gross - sum(a for _, a in ded)
        net += tweak.get("net_off", 0)
        return {
            "emp_id": tweak.get("emp_id", p["emp_id"]), "name": p["name"], "id_no": p["id_no"],
            "phone": p["phone"], "account": p["account"],
            "earnings": [{"name": n, "amount": yuan(a)} for n, a in earnings],
            "deductions": [{"name": n, "amount": yuan(a)} for n, a in ded],
            "gross": yuan(gross), "net": yuan(net),
        }, net

    def emit_run(self, u, period, pay_date, t, lines, total):
        run_id = f"GZ-{u.code}-{period.replace('-', '')}"
        # Balanced parts of at most part_lines lines, each under ~900 KB so that
        # a part fits NATS's default max_payload (1 MiB).
        nbytes = sum(len(json.dumps(ln, ensure_ascii=False, separators=(",", ":")).encode()) for ln in lines)
        nparts = max(-(-len(lines) // self.a.part_lines), -(-nbytes // PART_BYTES))
        size = -(-len(lines) // nparts)
        parts = [lines[i:i + size] for i in range(0, len(lines), size)]
        msgs = []
        for k, chunk in enumerate(parts, 1):
            data = {"id": None, "run_id": run_id, "part": k, "parts": len(parts), "occurred_at": ts(t),
                    "unit_code": u.code, "unit_name": u.name, "period": period, "pay_date": pay_date.isoformat(),
                    "indicator_id": u.salary.id, "lines": chunk}
            msgs.append(self.emit(t, "payroll", u.code, data))
            t += dt.timedelta(seconds=20)
        u.salary.spend += total
        return run_id, msgs

    def build_payroll(self):
        py, pm = prev_month(self.day.year, self.day.month)
        prev_period, cur_period = f"{py}-{pm:02d}", f"{self.day:%Y-%m}"
        prev_pay = self.cal.next_workday(dt.date(py, pm, min(self.day.day, month_end(py, pm).day)))
        self.prev_pay = prev_pay
        r = self.rng
        plants = self.a.plant
        # Planted payroll cases, decided up front.
        mid = [u for u in self.units if u.nstaff >= 20 and u is not self.short_unit]
        if plants:
            arith_u, jump_u, bad_u, old_u, dup_a, dup_b = r.sample(mid, 6)
            if dup_a.code > dup_b.code:
                dup_a, dup_b = dup_b, dup_a
            jump_p = r.choice(jump_u.staff)
            arith_p = r.choice(arith_u.staff)
            dup_p = r.choice(dup_a.staff)
        self.run_nets = {}
        for idx, (period, pay) in enumerate([(prev_period, prev_pay), (cur_period, self.day)]):
            t0 = dt.datetime(pay.year, pay.month, pay.day, 8, 0, 0)
            for ui, u in enumerate(self.units):
                lines, total, planted = [], 0, []
                for p in u.staff:
                    tweak = {}
                    if plants and idx == 1 and p is jump_p:
                        tweak["perf_add"] = 600000
                    if plants and idx == 1 and p is arith_p:
                        tweak["net_off"] = 1
                    line, net = self.payroll_line(p, idx, tweak)
                    lines.append(line)
                    total += net
                    if tweak.get("perf_add"):
                        planted.append(("payroll_net_jump", line["emp_id"]))
                    if tweak.get("net_off"):
                        planted.append(("payroll_arithmetic", line["emp_id"]))
                if plants and idx == 1:
                    extra = []
                    if u is bad_u:
                        birth = dt.date(1985, 3, 14)
                        p = self.new_person(u, len(u.staff) + 1, birth)
                        first17 = p["id_no"][:17]
                        good = id_check_digit(first17)
                        p["id_no"] = first17 + ("0123456789X"[("0123456789X".index(good) + 3) % 11])
                        extra.append((p, "payroll_invalid_id"))
                    if u is old_u:
                        birth = dt.date(self.day.year - 61, 2, 9)
                        p = self.new_person(u, len(u.staff) + 1, birth)
                        extra.append((p, "payroll_invalid_id"))
                    if u is dup_b:
                        p = dict(dup_p)
                        p["emp_id"] = f"E{len(u.staff) + 1:05d}"
                        extra.append((p, "payroll_duplicate_person"))
                    for p, rule in extra:
                        line, net = self.payroll_line(p, 1)
                        lines.append(line)
                        total += net
                        planted.append((rule, line["emp_id"]))
                t = t0 + dt.timedelta(seconds=45 * ui)
                run_id, msgs = self.emit_run(u, period, pay, t, lines, total)
                self.run_nets[(u.code, idx)] = total
                for rule, emp in planted:
                    line_no = next(i for i, ln in enumerate(lines) if ln["emp_id"] == emp)
                    m = msgs[line_no // len(msgs[0].data["lines"])]
                    self.plant_extra(m, rule, "payroll_line", f"{run_id}/{emp}")
                if plants and idx == 1 and u is self.short_unit:
                    self.plant_extra(msgs[-1], "payroll_over_indicator", "payroll_run", run_id)

    def plant_extra(self, m, rule, skind, sid):
        """A message can carry several plants (payroll parts): clone a marker."""
        if m.plant is None:
            self.plant(m, rule, skind, sid)
        else:
            marker = Msg(m.t, m.seq, m.subject, m.data, m.kind)
            marker.plant = (rule, skind, sid)
            marker.line = -1
            self.planted.append((marker, m))

    # -- reimbursements and subsidies -----------------------------------------------
    def build_reimb_subsidy(self):
        r = self.rng
        nre, nsub = (200, 300) if self.a.scale == "small" else (2000, 3000)
        people = [p for u in self.units for p in u.staff]
        for k in range(nre):
            p = r.choice(people)
            u = p["unit"]
            while True:
                amt = int(r.lognormvariate(0, 0.9) * 1500 * 100)
                if 5000 <= amt <= 1500000:
                    break
            paid = self.work_time()
            self.reimb(u, p, amt, paid, r.choice(REIMB_SUMMARIES), k + 1)
        seen = set()
        k = 0
        while k < nsub:
            p = r.choice(people)
            kind, amounts, _ = r.choices(SUBSIDY_KINDS, [w for _, _, w in SUBSIDY_KINDS])[0]
            if (p["id_no"], kind) in seen:
                continue
            seen.add((p["id_no"], kind))
            k += 1
            self.subsidy(p["unit"], p, kind, r.choice(amounts), self.work_time(), k)
        self.n_reimb, self.n_sub = nre, nsub
        if self.a.plant:
            p = r.choice(people)
            m = self.reimb(p["unit"], p, 2356000, self.day_at(15, 5), "差旅费（赴外省招商考察）", nre + 1)
            self.plant(m, "reimburse_large", "reimburse", m.data["reimb_id"])
            cands = [q for q in people if (q["id_no"], "交通补贴") not in seen]
            p = r.choice(cands)
            self.subsidy(p["unit"], p, "交通补贴", 60000, self.day_at(10, 12), nsub + 1)
            m = self.subsidy(p["unit"], p, "交通补贴", 60000, self.day_at(14, 40), nsub + 2)
            self.plant(m, "subsidy_duplicate", "subsidy", m.data["payout_id"])

    def reimb(self, u, p, amt, paid, summary, k):
        spent = paid.date() - DAY * self.rng.randrange(1, 40)
        data = {"id": None, "reimb_id": f"BX{YEAR}-{k:05d}", "occurred_at": ts(paid + MINUTE),
                "unit_code": u.code, "emp_id": p["emp_id"], "name": p["name"], "phone": p["phone"],
                "amount": yuan(amt), "card_last4": self.digits(4), "spent_on": spent.isoformat(),
                "paid_at": ts(paid), "summary": summary}
        return self.emit(paid + MINUTE, "reimburse", u.code, data)

    def subsidy(self, u, p, kind, amt, paid, k):
        data = {"id": None, "payout_id": f"BT{YEAR}-{k:05d}", "occurred_at": ts(paid + MINUTE),
                "unit_code": u.code, "emp_id": p["emp_id"], "name": p["name"], "phone": p["phone"],
                "kind": kind, "amount": yuan(amt), "paid_at": ts(paid)}
        return self.emit(paid + MINUTE, "subsidy", u.code, data)

    def day_at(self, h, m, day=None):
        day = day or self.day
        return dt.datetime(day.year, day.month, day.day, h, m, self.rng.randrange(60))

    # -- planted vouchers ---------------------------------------------------------
    def ordinary(self, u, econ):
        """The unit's ordinary indicator for econ, creating one if it has none."""
        for i in u.indicators:
            if i.econ == econ and not i.project and i.voucher_ok:
                return i
        ind = Indicator(u, econ)
        ind.base = self.base_allocation(ind)
        u.indicators.append(ind)
        return ind

    def plant_vouchers(self):
        r = self.rng
        clean = [u for u in self.units if not has_any(u.name, SENSITIVE_WORDS + ("工会",))
                 and u is not self.short_unit]
        pool = r.sample(clean, min(len(clean), 24))
        nxt = iter(pool * 3)

        def company(industry):
            return self.company(industry) if industry not in FIXED_PAYEES else None

        def pv(rule, u, ind, amount, t, payee, purpose, flow="paid", settle="transfer", **over):
            v = self.make_voucher(u, ind, amount, t, payee, purpose, settle)
            for k, val in over.items():
                setattr(v, k, val)
            self.flow(v, flow)
            if rule:
                v.planted = rule
            return v

        day = self.day
        # over_balance: a small indicator used only by this voucher (no project
        # code, so year_end_rush stays quiet when --day is in Nov-Dec).
        u = next(nxt)
        ind = self.dedicated_ind(u, "30227", allocation=2_000_000, project=False)
        pv("over_balance", u, ind, 2_680_000, self.day_at(10, 21), company("consult"), "信息系统运维服务费")
        # unknown_indicator
        u = next(nxt)
        ind = self.ordinary(u, "30201")
        v = pv("unknown_indicator", u, None, 386_000, self.day_at(9, 48), company("office"), "办公用品采购")
        v.indicator_id, v.econ, v.func = f"ZB{YEAR}-{u.code}-0999", "30201", u.func
        # class_mismatch: econ 30202 against a 30201 indicator
        u = next(nxt)
        ind = self.ordinary(u, "30201")
        pv("class_mismatch", u, ind, 458_000, self.day_at(11, 3), company("print"), "印制工作手册200册", econ="30202")
        # catchall_econ_class: an indicator whose own class is 其他商品和服务支出
        u = next(nxt)
        ind = Indicator(u, "30299")
        ind.base, ind.voucher_ok = 5_000_000, False
        u.indicators.append(ind)
        pv("catchall_econ_class", u, ind, 650_000, self.day_at(14, 36), company("office"), "零星商品采购")
        # own_account_transfer
        u = next(nxt)
        own = Company(u.name, u.own_account, u.payer_bank, "own_unit")
        pv("own_account_transfer", u, self.ordinary(u, "30227"), 8_000_000, self.day_at(15, 12), own,
           "划转至本单位实有资金账户")
        # large_individual_transfer
        u = next(nxt)
        acct, bank = self.new_card()
        pv("large_individual_transfer", u, self.ordinary(u, "30226"), 6_800_000, self.day_at(10, 44),
           Company(self.person_name(), acct, bank, "individual"), "课题研究劳务费")
        # very_large_payment
        u = next(nxt)
        ind = self.dedicated_ind(u, "31005", flags=["direct"], allocation=3_000_000_000)
        ind.fund_source = "中央直达资金"
        pv("very_large_payment", u, ind, 1_250_000_000, self.day_at(9, 15), company("construction"),
           "崤山路道路改造工程进度款")
        # cash_over_limit
        u = next(nxt)
        acct, bank = self.new_card()
        pv("cash_over_limit", u, self.ordinary(u, "30226"), 2_500_000, self.day_at(11, 26),
           Company(self.person_name(), acct, bank, "individual"), "临时用工劳务费结算", settle="cash")
        # card_mandatory: 办公费 in cash
        u = next(nxt)
        pv("card_mandatory", u, self.ordinary(u, "30201"), 186_000, self.day_at(16, 2), company("office"),
           "办公用品采购（现金结算）", settle="cash")
        # sangong_diversion: a hospitality purpose under 办公费
        u = next(nxt)
        pv("sangong_diversion", u, self.ordinary(u, "30201"), 230_000, self.day_at(12, 18), company("catering"),
           "接待来访客人工作餐")
        # sangong_budget: a unit whose only 三公 indicator is small
        u = next(nxt)
        u.no_sangong_traffic = True
        sg = [i for i in u.indicators if "sangong" in i.flags]
        for i in sg:
            u.indicators.remove(i)
        ind = Indicator(u, "30217", flags=["sangong"])
        ind.final, ind.fixed, ind.voucher_ok = 2_000_000, True, False
        u.indicators.append(ind)
        pv(None, u, ind, 480_000, self.day_at(9, 30), company("catering"), "接待省财政厅检查组工作餐")
        pv("sangong_budget", u, ind, 1_390_000, self.day_at(13, 50), company("catering"), "接待外地考察团工作餐")
        # vague_purpose: a generic word, and an empty purpose
        u = next(nxt)
        pv("vague_purpose", u, self.ordinary(u, "30213"), 320_000, self.day_at(10, 5), company("repair"), "费用")
        u = next(nxt)
        pv("vague_purpose", u, self.ordinary(u, "30201"), 142_000, self.day_at(15, 40), company("office"), "")
        # sensitive_keywords
        u = next(nxt)
        pv("sensitive_keywords", u, self.ordinary(u, "30201"), 680_000, self.day_at(11, 50), company("office"),
           "采购礼品（茶叶）")
        # split_payment: three to one payee in a day, each under 50,000, together over
        u = next(nxt)
        c = company("repair")
        ind = self.ordinary(u, "30213")
        for i, (amt, h, mi) in enumerate([(1_980_000, 9, 40), (1_860_000, 11, 5), (1_790_000, 14, 20)]):
            pv("split_payment" if i == 2 else None, u, ind, amt, self.day_at(h, mi), c,
               ["办公楼三层卫生间维修", "办公楼四层卫生间维修", "办公楼五层卫生间维修"][i])
        # duplicate_payment
        u = next(nxt)
        c = company("print")
        ind = self.ordinary(u, "30202")
        pv(None, u, ind, 846_000, self.day_at(10, 12), c, "印刷政策宣传折页")
        pv("duplicate_payment", u, ind, 846_000, self.day_at(15, 47), c, "印刷政策宣传折页")
        # off_hours: late at night (created and signed, not sent) and on the previous Sunday
        u = next(nxt)
        v = pv("off_hours", u, self.ordinary(u, "30213"), 412_000, dt.datetime(day.year, day.month, day.day, 23, 10, 7),
               company("repair"), "机房空调紧急维修", flow="none")
        v.events.append(("signed", v.t + dt.timedelta(minutes=6), {}))
        u = next(nxt)
        sunday = day - DAY * ((day.weekday() + 1) % 7 or 7)
        v = pv("off_hours", u, self.ordinary(u, "30209"), 1_560_000, self.day_at(10, 5, sunday), company("property"),
               "办公区保洁服务费", flow="none")
        nwd = self.cal.next_workday(sunday + DAY)
        t = dt.datetime(nwd.year, nwd.month, nwd.day, 9, 10, 0)
        v.events += [("signed", v.t + dt.timedelta(minutes=25), {}), ("sent", t, {}),
                     ("paid", t + dt.timedelta(minutes=50), {"bank_ref": f"{t:%Y%m%d}{90000001:08d}"})]
        # union_payee
        u = next(nxt)
        ind = self.ordinary(u, "30228")
        ind.flags = ["union"]
        acct, bank = self.new_corp_account()
        pv("union_payee", u, ind, 2_600_000, self.day_at(14, 8),
           Company(f"{u.name}工会委员会", acct, bank, "company"), "拨付2024年工会经费")
        # bonus_outside_payroll
        u = next(nxt)
        acct, bank = self.new_card()
        pv("bonus_outside_payroll", u, self.ordinary(u, "30226"), 360_000, self.day_at(16, 20),
           Company(self.person_name(), acct, bank, "individual"), "发放端午节加班费")
        # flow_unknown_voucher: a paid event for a voucher never created
        u = next(nxt)
        ghost = self.next_voucher_no()
        t = self.day_at(11, 31)
        m = self.emit(t, "voucher", u.code, {"id": None, "event": "paid", "occurred_at": ts(t), "voucher_no": ghost,
                                             "unit_code": u.code, "bank_ref": f"{t:%Y%m%d}{90000002:08d}"})
        self.plant(m, "flow_unknown_voucher", "voucher", ghost)
        # flow_out_of_order: paid without sent
        u = next(nxt)
        v = pv("flow_out_of_order", u, self.ordinary(u, "30207"), 96_000, self.day_at(9, 5), company("courier"),
               "邮寄公文资料费", flow="none")
        v.events += [("signed", v.t + dt.timedelta(minutes=12), {}),
                     ("paid", v.t + dt.timedelta(minutes=40), {"bank_ref": f"{v.t:%Y%m%d}{90000003:08d}"})]
        v.planted_event = "paid"
        # flow_amount_changed: paid carries another amount
        u = next(nxt)
        v = pv("flow_amount_changed", u, self.ordinary(u, "30213"), 543_000, self.day_at(9, 55), company("repair"),
               "监控系统维修")
        ev, t, extra = v.events[-1]
        v.events[-1] = (ev, t, dict(extra, amount=yuan(534_000)))
        v.planted_event = "paid"
        # returned_repeatedly: one payee account returned by three units
        c = company("equipment")
        self.returned_accounts.add(c.account)
        us = [next(nxt) for _ in range(3)]
        for i, (u, h) in enumerate(zip(us, (9, 11, 14))):
            v = pv("returned_repeatedly" if i == 2 else None, u, self.ordinary(u, "31002"),
                   [1_250_000, 870_000, 2_130_000][i], self.day_at(h, 20), c, "采购台式计算机5台",
                   flow="returned_paid" if i != 1 else "returned_sent")
            v.planted_event = "returned"
        # stuck_voucher: sent, never paid (the October tail makes the replay's ticks reach it)
        u = next(nxt)
        self.stuck = pv("stuck_voucher", u, self.ordinary(u, "30213"), 275_000, self.day_at(14, 3),
                        company("repair"), "门窗维修更换", flow="none")
        self.stuck.events += [("signed", self.stuck.t + dt.timedelta(minutes=20), {}),
                              ("sent", self.stuck.t + dt.timedelta(minutes=55), {})]
        self.stuck.planted_event = "created"
        # q4_prepayment on a later autumn day (also the tail of the file)
        u = next(nxt)
        tail = self.tail_day()
        v = pv("q4_prepayment" if tail.month >= 10 else None, u, self.ordinary(u, "30215"), 1_800_000,
               self.day_at(10, 20, tail), company("meeting"), "预付年度工作会议场地费")
        self.tail = v
        # reduction_refused: planted later, once allocations are known
        self.refuse_unit = next(nxt)

    def tail_day(self):
        d = dt.date(self.day.year, 10, 15)
        if d < self.day + DAY * 7:
            d = self.day + DAY * 7
        return self.cal.next_workday(d)

    # -- indicator operations ------------------------------------------------------------
    def build_indicator_ops(self):
        r = self.rng
        # year-start allocations: one document per department, spread over January workdays
        jan = [d for d in (dt.date(YEAR, 1, 1) + DAY * i for i in range(31)) if self.cal.is_workday(d)]
        depts = sorted({u.dept for u in self.units})
        dept_doc = {}
        dept_day = {}
        for i, d in enumerate(depts):
            dept_doc[d] = self.next_doc()
            dept_day[d] = jan[min(len(jan) - 1, 1 + i // 3)]
        # final allocations
        for u in self.units:
            for ind in u.indicators:
                if ind.fixed:
                    continue
                if ind is u.salary:
                    if u is self.short_unit:
                        need = self.run_nets[(u.code, 0)] + self.run_nets[(u.code, 1)] // 2
                        ind.final = (need + 9999) // 10000 * 10000
                        ind.fixed = True
                    else:
                        ind.final = (ind.spend * 6 * r.randrange(105, 116) // 100 + 999999) // 1000000 * 1000000
                    continue
                # projects keep paid under year_end_rush's 50% share even if --day is in Nov-Dec
                lo, hi = (250, 400) if ind.project else (160, 300)
                want = ind.spend * r.randrange(lo, hi) // 100 + ind.base
                ind.final = (want + 99999) // 100000 * 100000
        # transfers (调剂, 增人增资): from an ordinary indicator to the salary indicator
        ops = []  # (time, unit, data)
        spring = [d for d in (dt.date(YEAR, 2, 19) + DAY * i for i in range((self.day - dt.date(YEAR, 2, 19)).days - 1))
                  if self.cal.is_workday(d)]
        transfers = []
        if spring:
            for u in r.sample(self.units, min(6, len(self.units))):
                if u is self.short_unit:
                    continue
                srcs = [i for i in u.indicators if i.voucher_ok and not i.project and i.econ in ALWAYS_ECON]
                src = r.choice(srcs)
                amt = r.randrange(5, 20) * 1_000_000
                transfers.append((u, src, amt))
        start = {}
        for u in self.units:
            for ind in u.indicators:
                start[ind.id] = ind.final
        for u, src, amt in transfers:
            start[src.id] += amt
            start[u.salary.id] -= amt
        # adjustments: 追加 / 调减 in spring; a year-start amount that leads to the final one
        adjust = []
        for u in self.units:
            for ind in u.indicators:
                if ind.fixed or not spring or r.random() > 0.3:
                    continue
                # sized on the final amount, so every intermediate balance stays well above the spend
                if ind is u.salary:
                    delta = ind.final // 10 // 1000000 * 1000000
                elif r.random() < 0.6:
                    delta = ind.final * r.randrange(10, 30) // 100 // 100000 * 100000
                else:
                    delta = -(ind.final * r.randrange(5, 25) // 100 // 100000 * 100000)
                if delta == 0 or start[ind.id] - delta <= 0:
                    continue
                start[ind.id] -= delta
                adjust.append((ind, delta))
        for u in self.units:
            for ind in u.indicators:
                assert start[ind.id] > 0, ind.id
                t = dt.datetime.combine(dept_day[u.dept], dt.time(9, 0)) + dt.timedelta(
                    minutes=r.randrange(0, 420), seconds=r.randrange(60))
                note = "年初预算"
                if "direct" in ind.flags:
                    note = "中央直达资金"
                elif ind.project:
                    note = "年初预算（项目支出）"
                data = {"id": None, "op": "allocate", "occurred_at": ts(t), "doc_no": dept_doc[u.dept],
                        "indicator_id": ind.id, "year": YEAR, "unit_code": u.code, "func_class": ind.func,
                        "econ_class": ind.econ, "fund_type": ind.fund_type, "fund_source": ind.fund_source}
                if ind.project:
                    data["project_code"] = ind.project
                data.update({"amount": yuan(start[ind.id]), "note": note})
                if ind.flags:
                    data["flags"] = list(ind.flags)
                ops.append((t, u, data))
        later = []
        for ind, delta in adjust:
            d = r.choice(spring)
            t = dt.datetime.combine(d, dt.time(9, 0)) + dt.timedelta(minutes=r.randrange(0, 450))
            later.append((t, ind.unit, {"op": "adjust", "indicator_id": ind.id, "year": YEAR,
                                        "amount": yuan(delta), "note": "追加预算" if delta > 0 else "调减预算"}))
        for u, src, amt in transfers:
            d = r.choice(spring)
            t = dt.datetime.combine(d, dt.time(9, 0)) + dt.timedelta(minutes=r.randrange(0, 450))
            later.append((t, u, {"op": "transfer", "indicator_id": u.salary.id, "from_indicator_id": src.id,
                                 "year": YEAR, "amount": yuan(amt), "note": "增人增资调剂"}))
        later.sort(key=lambda x: (x[0], x[2]["indicator_id"]))
        for t, u, body in later:
            data = {"id": None, "op": body["op"], "occurred_at": ts(t), "doc_no": self.next_doc(),
                    "indicator_id": body["indicator_id"], "unit_code": u.code}
            data.update({k: v for k, v in body.items() if k not in ("op", "indicator_id")})
            ops.append((t, u, data))
        for t, u, data in ops:
            self.emit(t, "indicator", u.code, data)
        # a 追加 on the day itself (small against the final amount)
        u = r.choice(self.units)
        inds = [i for i in u.indicators if i.voucher_ok and not i.fixed]
        ind = r.choice(inds)
        add = ind.final // 10 // 100000 * 100000
        if add > 0:  # part of the final amount: the year-start allocation was that much smaller
            t = self.day_at(9, 33)
            first = next(m for m in self.msgs if m.kind == "indicator" and m.data["indicator_id"] == ind.id)
            first.data["amount"] = yuan(fen_of(first.data["amount"]) - add)
            self.emit(t, "indicator", u.code, {"id": None, "op": "adjust", "occurred_at": ts(t),
                                               "doc_no": self.next_doc(), "indicator_id": ind.id,
                                               "unit_code": u.code, "year": YEAR, "amount": yuan(add),
                                               "note": "追加预算（当日下达）"})
        # reduction_refused: take back the whole allocation after spending has started
        if self.a.plant:
            u = self.refuse_unit
            cands = [i for i in u.indicators if i.voucher_ok and not i.fixed and i.first_use is not None
                     and i.first_use < self.day_at(15, 0) and i is not ind]
            cands = [i for i in cands if any(v.ind is i and v.t < self.day_at(15, 0)
                                             and v.events[-1][0] == "paid" for v in self.vouchers)]
            if not cands:
                cands = [i for i in (x for uu in self.units for x in uu.indicators)
                         if i.voucher_ok and not i.fixed and i is not ind
                         and any(v.ind is i and v.t < self.day_at(15, 0) and v.events[-1][0] == "paid"
                                 for v in self.vouchers)]
            tgt = cands[0]
            t = self.day_at(16, 40)
            m = self.emit(t, "indicator", tgt.unit.code, {
                "id": None, "op": "adjust", "occurred_at": ts(t), "doc_no": self.next_doc(),
                "indicator_id": tgt.id, "unit_code": tgt.unit.code, "year": YEAR,
                "amount": yuan(-tgt.final), "note": "收回结余指标"})
            self.plant(m, "reduction_refused", "indicator", tgt.id)

    # -- emit vouchers -----------------------------------------------------------------
    def emit_vouchers(self):
        for v in self.vouchers:
            u = v.unit
            for ev, t, extra in v.events:
                if ev == "created":
                    data = {"id": None, "event": "created", "occurred_at": ts(t), "voucher_no": v.no, "year": YEAR,
                            "unit_code": u.code, "unit_name": u.name, "indicator_id": v.indicator_id,
                            "func_class": v.func, "econ_class": v.econ, "pay_method": v.pay_method,
                            "settle_method": v.settle, "payee_name": v.payee.name,
                            "payee_account": v.payee.account, "payee_bank": v.payee.bank,
                            "payee_type": v.payee.type, "payer_name": u.name, "payer_account": u.payer_account,
                            "fund_type": "1"}
                    if v.project:
                        data["project_code"] = v.project
                    data["amount"] = yuan(v.amount)
                    data["purpose"] = v.purpose
                else:
                    data = {"id": None, "event": ev, "occurred_at": ts(t), "voucher_no": v.no, "unit_code": u.code}
                    data.update(extra)
                m = self.emit(t, "voucher", u.code, data)
                if v.planted and ev == getattr(v, "planted_event", "created"):
                    self.plant(m, v.planted, "voucher", v.no)

    # -- malformed messages ---------------------------------------------------------
    def build_malformed(self):
        r = self.rng
        u = r.choice(self.units)
        ind = next(i for i in u.indicators if i.voucher_ok)

        def bad(t, kind, unit_code, data, dlq, field, subject=None):
            m = self.emit(t, kind, unit_code, data, subject)
            m.dlq = (dlq, field)

        def created(t, unit, amount):
            return {"id": None, "event": "created", "occurred_at": ts(t), "voucher_no": self.next_voucher_no(),
                    "year": YEAR, "unit_code": unit.code, "unit_name": unit.name, "indicator_id": ind.id,
                    "func_class": ind.func, "econ_class": ind.econ, "pay_method": "authorized",
                    "settle_method": "transfer", "payee_name": "三门峡恒达办公用品有限公司",
                    "payee_account": "41050166880800000123", "payee_bank": "中国建设银行三门峡湖滨支行",
                    "payee_type": "company", "fund_type": "1", "amount": amount, "purpose": "办公用品采购"}

        t = self.day_at(10, 31)
        bad(t, "voucher", u.code, created(t, u, 1234.5), "voucher", "amount")          # JSON number
        t = self.day_at(13, 12)
        d = created(t, u, "2480.00")
        other = next(x for x in self.units if x is not u)
        d["unit_code"] = other.code
        bad(t, "voucher", u.code, d, "voucher", "unit_code")                            # subject/body differ
        t = self.day_at(9, 58)
        bad(t, "indicator", u.code, {"id": None, "op": "adjust", "occurred_at": f"{YEAR}-06-31T10:00:00+08:00",
                                     "doc_no": "三财预〔2024〕999号", "indicator_id": ind.id, "unit_code": u.code,
                                     "amount": "5000.00"}, "indicator", "occurred_at")  # impossible date
        p = r.choice(u.staff)
        t = self.day_at(15, 21)
        bad(t, "reimburse", u.code, {"id": None, "reimb_id": f"BX{YEAR}-99001", "occurred_at": ts(t),
                                     "unit_code": u.code, "emp_id": p["emp_id"], "name": p["name"],
                                     "phone": p["phone"], "amount": "1e3", "card_last4": "0417",
                                     "spent_on": (self.day - DAY * 6).isoformat(), "paid_at": ts(t),
                                     "summary": "差旅费"}, "reimburse", "amount")
        t = self.day_at(11, 7)
        bad(t, "subsidy", u.code, {"id": None, "payout_id": f"BT{YEAR}-99001", "occurred_at": ts(t),
                                   "unit_code": u.code, "emp_id": p["emp_id"], "name": p["name"],
                                   "phone": p["phone"], "kind": "通讯补贴", "paid_at": ts(t)}, "subsidy", "amount")
        t = self.day_at(16, 11)
        line, _ = self.payroll_line(p, 1)
        line["earnings"][3]["amount"] = "1520.125"
        bad(t, "payroll", u.code, {"id": None, "run_id": f"GZ-{u.code}-{self.day:%Y%m}-BF", "part": 1, "parts": 1,
                                   "occurred_at": ts(t), "unit_code": u.code, "unit_name": u.name,
                                   "period": f"{self.day:%Y-%m}", "pay_date": self.day.isoformat(),
                                   "indicator_id": u.salary.id, "lines": [line]},
            "payroll", "lines[0].earnings[3].amount")
        t = self.day_at(12, 2)
        bad(t, "unknown", u.code, {"id": None, "occurred_at": ts(t), "unit_code": u.code, "contract_no": "HT2024-0311",
                                   "amount": "52000.00"}, "unknown", "subject", subject=f"fiscal.contract.{u.code}")

    # -- everything ------------------------------------------------------------------
    def build(self):
        self.build_units()
        self.build_staff()
        self.build_indicators()
        if self.a.plant:
            self.plant_vouchers()
        self.build_vouchers()
        self.build_payroll()
        self.build_indicator_ops()
        self.emit_vouchers()
        self.build_reimb_subsidy()
        if self.a.plant:
            self.build_malformed()
        self.msgs.sort(key=lambda m: (m.t, m.seq))
        for i, m in enumerate(self.msgs, 1):
            m.data["id"] = f"evt-{i:07d}"
        lines = []
        redeliver = None
        if self.a.plant and self.a.redeliver:
            signed = [m for m in self.msgs if m.kind == "voucher" and m.data.get("event") == "signed"
                      and m.t.date() == self.day]
            redeliver = signed[len(signed) // 2] if signed else None
        for m in self.msgs:
            m.line = len(lines) + 1
            lines.append(self.dump(m))
            if m is redeliver:
                lines.append(self.dump(m))  # a redelivered message: same id, must change nothing
        self.redelivered = 1 if redeliver else 0
        return lines

    @staticmethod
    def dump(m):
        return json.dumps({"subject": m.subject, "data": m.data}, ensure_ascii=False, separators=(",", ":"))

    def planted_list(self):
        out = []
        for item in self.planted:
            m, host = (item, item) if isinstance(item, Msg) else item
            rule, skind, sid = m.plant
            out.append({"rule": rule, "subject": {"kind": skind, "id": sid}, "line": host.line})
        for m in self.msgs:
            if m.dlq:
                out.append({"rule": "dlq", "subject": {"kind": m.dlq[0], "id": m.data["id"]},
                            "field": m.dlq[1], "line": m.line})
        out.sort(key=lambda x: (x["line"], x["rule"], x["subject"]["id"]))
        return out


# --------------------------------------------------------------------------
# Verification: shape of every message, and the alerts the standard pack
# should raise (a reference reading of rules.md, used to check that normal
# traffic is clean and that every plant fires).
# --------------------------------------------------------------------------
REQUIRED = {
    "voucher.created": ["id", "event", "occurred_at", "voucher_no", "year", "unit_code", "unit_name", "indicator_id",
                        "func_class", "econ_class", "pay_method", "settle_method", "payee_name", "payee_account",
                        "payee_bank", "payee_type", "amount", "purpose"],
    "voucher.other": ["id", "event", "occurred_at", "voucher_no", "unit_code"],
    "indicator": ["id", "op", "occurred_at", "doc_no", "indicator_id", "unit_code", "amount"],
    "payroll": ["id", "run_id", "part", "parts", "occurred_at", "unit_code", "period", "pay_date", "indicator_id",
                "lines"],
    "reimburse": ["id", "reimb_id", "occurred_at", "unit_code", "emp_id", "name", "phone", "amount", "card_last4",
                  "spent_on", "paid_at", "summary"],
    "subsidy": ["id", "payout_id", "occurred_at", "unit_code", "emp_id", "name", "phone", "kind", "amount", "paid_at"],
}
LINE_REQUIRED = ["emp_id", "name", "id_no", "phone", "account", "earnings", "deductions", "gross", "net"]


def shape_error(subject, data):
    """None when the message is well formed, else 'field: reason' (a subset of the daemon's checks)."""
    parts = subject.split(".")
    if len(parts) != 3 or parts[0] != "fiscal" or parts[1] not in ("voucher", "indicator", "payroll", "reimburse",
                                                                   "subsidy"):
        return "subject: unknown kind"
    kind = parts[1]
    if not isinstance(data, dict):
        return "body: not an object"
    if kind == "voucher":
        req = REQUIRED["voucher.created" if data.get("event") == "created" else "voucher.other"]
    elif kind == "indicator":
        req = REQUIRED["indicator"] + (["year", "func_class", "econ_class"] if data.get("op") == "allocate" else []) \
            + (["from_indicator_id"] if data.get("op") == "transfer" else [])
    else:
        req = REQUIRED[kind]
    for k in req:
        if k not in data:
            return f"{k}: missing"
    if data["unit_code"] != parts[2]:
        return "unit_code: differs from the subject"

    def money(path, v, neg=False):
        if not isinstance(v, str):
            return f"{path}: must be a string of yuan"
        if not MONEY_RE.match(v) or (v.startswith("-") and not neg):
            return f"{path}: bad money"
        return None

    def when(path, v):
        try:
            parse_ts(v)
            if not v.endswith(TZ):
                return f"{path}: not +08:00"
        except (ValueError, TypeError):
            return f"{path}: bad time"
        return None

    for k in ("occurred_at", "paid_at"):
        if k in data and (e := when(k, data[k])):
            return e
    for k in ("spent_on", "pay_date"):
        if k in data:
            try:
                dt.date.fromisoformat(data[k])
            except (ValueError, TypeError):
                return f"{k}: bad date"
    if "amount" in data and (e := money("amount", data["amount"], kind == "indicator" and data["op"] == "adjust")):
        return e
    if kind == "payroll":
        for i, ln in enumerate(data["lines"]):
            for k in LINE_REQUIRED:
                if k not in ln:
                    return f"lines[{i}].{k}: missing"
            for k in ("gross", "net"):
                if e := money(f"lines[{i}].{k}", ln[k]):
                    return e
            for k in ("earnings", "deductions"):
                for j, it in enumerate(ln[k]):
                    if e := money(f"lines[{i}].{k}[{j}].amount", it.get("amount")):
                        return e
    return None


def predict_hits(records, cal):
    """Reference evaluation of the standard pack over well-formed messages, in order.
    records: list of (line_no, subject, data).  Returns a list of (rule, kind, id, line_no)."""
    hits = []
    inds = {}
    vouchers = {}
    by_unit = defaultdict(list)       # unit -> vouchers (dicts) in created order
    returns = defaultdict(list)       # payee account -> returned times
    seen_ids = set()
    runs = {}                          # run_id -> parts seen
    period_ids = defaultdict(dict)     # period -> id_no -> (unit, run)
    period_accts = defaultdict(dict)   # period -> account -> id_no
    history = defaultdict(list)        # id_no -> [(period, net)]
    subsidies = set()
    sent_open = {}                     # voucher_no -> sent time (waiting for paid/returned/cancelled)
    stuck_done = set()
    rush_paid = Counter()              # indicator id -> paid since 1 November (project indicators)
    rush_done = set()
    last_tick = None

    def hit(rule, kind, sid, line):
        hits.append((rule, kind, sid, line))

    def avail(i):
        return i["allocated"] - i["frozen"] - i["paid"]

    def live(v):
        return v["state"] not in ("cancelled", "returned")

    def ticks_until(t):
        nonlocal last_tick
        top = t.replace(minute=0, second=0)
        if last_tick is None:
            last_tick = top
            return
        while last_tick < top:
            last_tick += HOUR
            for no, st in list(sent_open.items()):
                if no not in stuck_done and last_tick - st >= dt.timedelta(hours=STUCK_HOURS):
                    stuck_done.add(no)
                    hit("stuck_voucher", "voucher", no, vouchers[no]["line"])
            if last_tick.month >= 11:
                for iid, paid in rush_paid.items():
                    if iid not in rush_done and paid * 100 > inds[iid]["allocated"] * RUSH_PCT:
                        rush_done.add(iid)
                        hit("year_end_rush", "indicator", iid, 0)

    for line, subject, d in records:
        if d["id"] in seen_ids:
            continue  # redelivery: nothing happens a second time
        seen_ids.add(d["id"])
        kind = subject.split(".")[1]
        t = parse_ts(d["occurred_at"])
        ticks_until(t)
        unit = d["unit_code"]
        if kind == "indicator":
            op, iid, amt = d["op"], d["indicator_id"], fen_of(d["amount"])
            if op == "allocate":
                i = inds.setdefault(iid, {"unit": unit, "year": d["year"], "func": d["func_class"],
                                          "econ": d["econ_class"], "fund_type": d.get("fund_type"),
                                          "project": d.get("project_code"), "flags": d.get("flags", []),
                                          "allocated": 0, "frozen": 0, "paid": 0})
                i["allocated"] += amt
            elif op == "adjust":
                i = inds[iid]
                if i["allocated"] + amt < i["frozen"] + i["paid"]:
                    hit("reduction_refused", "indicator", iid, line)
                else:
                    i["allocated"] += amt
            elif op == "transfer":
                s, i = inds[d["from_indicator_id"]], inds[iid]
                if s["allocated"] - amt < s["frozen"] + s["paid"]:
                    hit("reduction_refused", "indicator", d["from_indicator_id"], line)
                else:
                    s["allocated"] -= amt
                    i["allocated"] += amt
        elif kind == "voucher":
            no, ev = d["voucher_no"], d["event"]
            if ev == "created":
                amt = fen_of(d["amount"])
                i = inds.get(d["indicator_id"])
                if i is None or i["unit"] != unit or i["year"] != d["year"]:
                    hit("unknown_indicator", "voucher", no, line)
                    i = None
                if i and amt > avail(i):
                    hit("over_balance", "voucher", no, line)
                if i and (i["func"] != d["func_class"] or i["econ"] != d["econ_class"]
                          or ("fund_type" in d and d["fund_type"] != i["fund_type"])
                          or ("project_code" in d and d["project_code"] != i["project"])):
                    hit("class_mismatch", "voucher", no, line)
                econ, purpose, ptype = d["econ_class"], d["purpose"], d["payee_type"]
                if econ in CATCHALL_ECON:
                    hit("catchall_econ_class", "voucher", no, line)
                if ptype == "own_unit" or d["payee_name"] in (d.get("payer_name"), d["unit_name"]):
                    hit("own_account_transfer", "voucher", no, line)
                if ptype == "individual" and amt > LARGE_INDIVIDUAL:
                    hit("large_individual_transfer", "voucher", no, line)
                if amt > VERY_LARGE:
                    hit("very_large_payment", "voucher", no, line)
                mine = by_unit[unit]
                if d["settle_method"] == "cash":
                    month_cash = sum(v["amount"] for v in mine if live(v) and v["cash"]
                                     and (v["t"].year, v["t"].month) == (t.year, t.month))
                    if amt > CASH_SINGLE or month_cash + amt > CASH_MONTH:
                        hit("cash_over_limit", "voucher", no, line)
                if econ in CARD_MANDATORY and (d["settle_method"] == "cash" or ptype == "individual") \
                        and amt <= CARD_CAP:
                    hit("card_mandatory", "voucher", no, line)
                if (econ in SANGONG_ECON and i and "sangong" not in i["flags"]) or \
                        (econ not in SANGONG_ECON and has_any(purpose, SANGONG_WORDS)):
                    hit("sangong_diversion", "voucher", no, line)
                if econ in SANGONG_ECON:
                    alloc = sum(x["allocated"] for x in inds.values() if x["unit"] == unit and "sangong" in x["flags"])
                    spent = sum(v["amount"] for v in mine if live(v) and v["econ"] in SANGONG_ECON
                                and v["t"].year == t.year) + amt
                    if alloc > 0 and spent * 100 >= alloc * SANGONG_WARN_PCT:
                        hit("sangong_budget", "voucher", no, line)
                p = purpose.strip()
                if len(p) < VAGUE_MIN or p in VAGUE_WORDS:
                    hit("vague_purpose", "voucher", no, line)
                if amt >= SENSITIVE_MIN and (has_any(purpose, SENSITIVE_WORDS) or
                                             has_any(d["payee_name"], SENSITIVE_WORDS)):
                    hit("sensitive_keywords", "voucher", no, line)
                acct = d["payee_account"]
                near = [v for v in mine if live(v) and v["acct"] == acct and t - v["t"] <= DAY * SPLIT_DAYS]
                small = [v["amount"] for v in near if v["amount"] < SPLIT_L]
                if amt < SPLIT_L and len(small) + 1 >= SPLIT_N and sum(small) + amt >= SPLIT_L:
                    hit("split_payment", "voucher", no, line)
                if any(v["amount"] == amt and t - v["t"] <= DAY * DUP_DAYS for v in near):
                    hit("duplicate_payment", "voucher", no, line)
                if not cal.is_workday(t.date()) or t.hour >= 22 or t.hour < 6:
                    hit("off_hours", "voucher", no, line)
                if t.month >= 10 and econ in Q4_ECON and has_any(purpose, Q4_WORDS) and amt > Q4_MIN:
                    hit("q4_prepayment", "voucher", no, line)
                if "工会" in d["payee_name"] and amt > UNION_MIN:
                    hit("union_payee", "voucher", no, line)
                if ptype == "individual" and has_any(purpose, BONUS_WORDS):
                    hit("bonus_outside_payroll", "voucher", no, line)
                v = {"no": no, "amount": amt, "ind": i, "ind_id": d["indicator_id"], "state": "created", "t": t, "acct": acct, "econ": econ,
                     "cash": d["settle_method"] == "cash", "line": line}
                if i:
                    i["frozen"] += amt
                vouchers[no] = v
                mine.append(v)
                continue
            v = vouchers.get(no)
            if v is None:
                hit("flow_unknown_voucher", "voucher", no, line)
                continue
            allowed = {"signed": {"created"}, "sent": {"signed"}, "paid": {"sent"},
                       "cancelled": {"created", "signed", "sent"}, "returned": {"sent", "paid"}}
            if v["state"] not in allowed[ev]:
                hit("flow_out_of_order", "voucher", no, line)
            if "amount" in d and fen_of(d["amount"]) != v["amount"]:
                hit("flow_amount_changed", "voucher", no, line)
            i, amt, prev = v["ind"], v["amount"], v["state"]
            if i and prev not in ("cancelled", "returned"):
                if ev == "paid" and prev != "paid":
                    i["frozen"] -= amt
                    i["paid"] += amt
                    if i["project"] and t.month >= 11:
                        rush_paid[v["ind_id"]] += amt
                        v["rush"] = True
                elif ev in ("cancelled", "returned"):
                    if prev == "paid":
                        i["paid"] -= amt
                        if v.get("rush"):
                            rush_paid[v["ind_id"]] -= amt
                    else:
                        i["frozen"] -= amt
            v["state"] = ev
            if ev == "sent":
                sent_open[no] = t
            elif ev in ("paid", "returned", "cancelled"):
                sent_open.pop(no, None)
            if ev == "returned":
                rs = returns[v["acct"]]
                rs.append(t)
                if len([x for x in rs if t - x <= DAY * RETURNED_DAYS]) >= RETURNED_N:
                    hit("returned_repeatedly", "voucher", no, line)
        elif kind == "payroll":
            run, period = d["run_id"], d["period"]
            pend = month_end(int(period[:4]), int(period[5:7]))
            r = runs.setdefault(run, {"parts": set(), "total": 0, "ids": set()})
            for ln in d["lines"]:
                sid = f"{run}/{ln['emp_id']}"
                gross, net = fen_of(ln["gross"]), fen_of(ln["net"])
                if gross != sum(fen_of(x["amount"]) for x in ln["earnings"]) or \
                        net != gross - sum(fen_of(x["amount"]) for x in ln["deductions"]):
                    hit("payroll_arithmetic", "payroll_line", sid, line)
                idn = ln["id_no"]
                if not id_valid(idn) or age_on(dt.date(int(idn[6:10]), int(idn[10:12]), int(idn[12:14])),
                                               pend) >= RETIRE_AGE:
                    hit("payroll_invalid_id", "payroll_line", sid, line)
                other = period_ids[period].get(idn)
                acct_owner = period_accts[period].get(ln["account"])
                if idn in r["ids"] or (other and other[0] != unit) or (acct_owner and acct_owner != idn):
                    hit("payroll_duplicate_person", "payroll_line", sid, line)
                prevs = [x for x in history[idn] if x[0] < period]
                if prevs:
                    pn = max(prevs)[1]
                    if (net - pn) * 100 > pn * JUMP_PCT and net - pn > JUMP_MIN:
                        hit("payroll_net_jump", "payroll_line", sid, line)
                r["ids"].add(idn)
                r["total"] += net
                period_ids[period].setdefault(idn, (unit, run))
                period_accts[period].setdefault(ln["account"], idn)
                history[idn].append((period, net))
            r["parts"].add(d["part"])
            if len(r["parts"]) == d["parts"]:
                i = inds.get(d["indicator_id"])
                if i is None or "salary" not in i["flags"] or r["total"] > avail(i):
                    hit("payroll_over_indicator", "payroll_run", run, line)
                if i:
                    i["paid"] += r["total"]
        elif kind == "reimburse":
            if fen_of(d["amount"]) > REIMBURSE_LARGE:
                hit("reimburse_large", "reimburse", d["reimb_id"], line)
        elif kind == "subsidy":
            key = (unit, d["emp_id"], d["kind"], d["paid_at"][:7])
            if key in subsidies:
                hit("subsidy_duplicate", "subsidy", d["payout_id"], line)
            subsidies.add(key)
    return hits


def verify(lines, cal, out=sys.stderr):
    """Check every line; returns (problems, hits, dlq, stats)."""
    problems = []
    records = []
    dlq = []
    stats = Counter()
    max_bytes = 0
    for n, text in enumerate(lines, 1):
        max_bytes = max(max_bytes, len(text.encode("utf-8")))
        try:
            msg = json.loads(text)
            subject, data = msg["subject"], msg["data"]
        except (ValueError, KeyError, TypeError) as e:
            problems.append(f"line {n}: not a message: {e}")
            continue
        err = shape_error(subject, data)
        if err:
            dlq.append((n, subject, data.get("id") if isinstance(data, dict) else None, err))
            continue
        kind = subject.split(".")[1]
        stats[kind] += 1
        if kind == "voucher":
            stats["voucher." + data["event"]] += 1
        elif kind == "indicator":
            stats["indicator." + data["op"]] += 1
        elif kind == "payroll":
            stats["payroll.lines"] += len(data["lines"])
            for ln in data["lines"]:
                if not re.fullmatch(r"1[3-9]\d{9}", ln["phone"]):
                    problems.append(f"line {n}: bad phone")
                if not re.fullmatch(r"62\d{17}", ln["account"]):
                    problems.append(f"line {n}: bad account")
        records.append((n, subject, data))
    hits = predict_hits(records, cal)
    stats["max_message_bytes"] = max_bytes
    return problems, hits, dlq, stats


# --------------------------------------------------------------------------
def main(argv=None):
    global YEAR
    ap = argparse.ArgumentParser(description="Generate a deterministic sample city for fundwatch (JSON Lines).")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", help="output file (JSON Lines)")
    ap.add_argument("--scale", choices=["small", "full"], default="small")
    ap.add_argument("--staff", type=int, default=10000)
    ap.add_argument("--units", type=int, default=60)
    ap.add_argument("--day", default="2024-06-12", help="the business day (a workday)")
    ap.add_argument("--vouchers", type=int, help="normal vouchers on the day (small 2000, full 24000)")
    ap.add_argument("--part-lines", type=int, default=2000, help="payroll lines per part (<= 2000)")
    ap.add_argument("--calendar", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "etc",
                                                       "calendar"), help="holiday calendar directory")
    ap.add_argument("--no-plant", dest="plant", action="store_false",
                    help="clean traffic only: no planted violations or malformed messages")
    ap.add_argument("--redeliver", action="store_true",
                    help="repeat one message verbatim (same id), as NATS may redeliver it; it must change nothing")
    ap.add_argument("--list-planted", action="store_true", help="print the planted cases as JSON lines on stdout")
    ap.add_argument("--verify", metavar="FILE", help="check an existing file and print what the pack should raise")
    a = ap.parse_args(argv)
    cal = Calendar(a.calendar)

    if a.verify:
        with open(a.verify, encoding="utf-8") as f:
            lines = [ln.rstrip("\n") for ln in f if ln.strip()]
        problems, hits, dlq, stats = verify(lines, cal)
        for p in problems[:20]:
            print(p, file=sys.stderr)
        print(f"lines {len(lines)}, malformed {len(dlq)}, problems {len(problems)}", file=sys.stderr)
        for rule, n in sorted(Counter(h[0] for h in hits).items()):
            print(f"  expected {rule:28s} {n}", file=sys.stderr)
        return 1 if problems else 0

    try:
        a.day = dt.date.fromisoformat(a.day)
    except ValueError:
        ap.error("--day must be YYYY-MM-DD")
    YEAR = a.day.year
    if a.vouchers is None:
        a.vouchers = 2000 if a.scale == "small" else 24000
    if not 1 <= a.part_lines <= 2000:
        ap.error("--part-lines must be 1..2000")
    if a.units < 30 and a.plant:
        ap.error("--units must be at least 30 with planted cases (or use --no-plant)")
    if a.units < 2 or a.staff < a.units * 5 or a.vouchers < 0:
        ap.error("need at least 2 units, 5 staff per unit, and vouchers >= 0")
    if not cal.is_workday(a.day):
        print(f"city.py: warning: {a.day} is not a workday in {a.calendar}", file=sys.stderr)
    if not a.out and not a.list_planted:
        ap.error("--out FILE is required (or --list-planted)")

    city = City(a, cal)
    lines = city.build()
    planted = city.planted_list()
    if a.out:
        with open(a.out, "w", encoding="utf-8", newline="\n") as f:
            for ln in lines:
                f.write(ln + "\n")
    if a.list_planted:
        for p in planted:
            print(json.dumps(p, ensure_ascii=False, separators=(",", ":")))

    # Self-check: shape, arithmetic, and that the reference rules fire exactly on the plants.
    problems, hits, dlq, stats = verify(lines, cal)
    want = Counter((p["rule"], p["subject"]["kind"], p["subject"]["id"]) for p in planted if p["rule"] != "dlq")
    got = Counter((h[0], h[1], h[2]) for h in hits)
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    dlq_want = sorted(p["line"] for p in planted if p["rule"] == "dlq")
    dlq_got = sorted(n for n, *_ in dlq)
    err = sys.stderr
    print(f"city.py: seed {a.seed}, day {a.day}, {len(city.units)} units, {a.staff} staff, "
          f"{len(lines)} lines{(' -> ' + a.out) if a.out else ''}", file=err)
    print("  indicator ops: " + ", ".join(f"{k.split('.')[1]} {v}" for k, v in sorted(stats.items())
                                          if k.startswith("indicator.")), file=err)
    print(f"  vouchers: {stats['voucher.created']} created; events " + ", ".join(
        f"{k.split('.')[1]} {v}" for k, v in sorted(stats.items()) if k.startswith("voucher.")), file=err)
    print(f"  payroll: {stats['payroll']} parts, {stats['payroll.lines']} lines (2 periods); "
          f"reimburse {stats['reimburse']}; subsidy {stats['subsidy']}; "
          f"malformed {len(dlq)}; redelivered {city.redelivered}; "
          f"largest message {stats['max_message_bytes']} bytes", file=err)
    by_rule = Counter(p["rule"] for p in planted)
    print(f"  planted {sum(by_rule.values())}: " + ", ".join(f"{k} {v}" for k, v in sorted(by_rule.items())), file=err)
    ok = True
    for p in problems[:20]:
        print(f"  PROBLEM {p}", file=err)
        ok = False
    for m in missing:
        print(f"  PROBLEM planted but not predicted: {m}", file=err)
        ok = False
    for x in extra[:30]:
        print(f"  PROBLEM predicted but not planted: {x}", file=err)
        ok = False
    if dlq_want != dlq_got:
        print(f"  PROBLEM malformed lines {dlq_got} != planted {dlq_want}", file=err)
        ok = False
    print("  self-check: " + ("ok (normal traffic raises nothing; every plant fires)" if ok else "FAILED"), file=err)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
