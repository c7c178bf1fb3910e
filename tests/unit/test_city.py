#!/usr/bin/env python3
"""Tests of bench/city.py, the sample city generator.

    python3 -m unittest tests/unit/test_city.py      (from the source root)

Checks, on a small city, that the file is byte-identical for the same
arguments, that every line is a well-formed message of contract §1-§2.5,
that payroll arithmetic and ID numbers hold except on the planted lines,
that the planted cases cover the rule pack, and, when a fundwatch binary is
available ($FW_BIN or build/daemon/fundwatch), that `fundwatch replay`
raises every planted alert and nothing else.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CITY = os.path.join(ROOT, "bench", "city.py")
sys.path.insert(0, os.path.join(ROOT, "bench"))
import city  # noqa: E402

ARGS = ["--seed", "7", "--staff", "1500", "--vouchers", "400"]
MONEY = re.compile(r"^-?\d+(\.\d{1,2})?$")
TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$")
RULES = {
    "over_balance", "unknown_indicator", "class_mismatch", "catchall_econ_class", "own_account_transfer",
    "large_individual_transfer", "very_large_payment", "cash_over_limit", "card_mandatory", "sangong_diversion",
    "sangong_budget", "vague_purpose", "sensitive_keywords", "split_payment", "duplicate_payment", "off_hours",
    "q4_prepayment", "union_payee", "bonus_outside_payroll", "flow_unknown_voucher", "flow_out_of_order",
    "flow_amount_changed", "stuck_voucher", "returned_repeatedly", "reduction_refused", "payroll_arithmetic",
    "payroll_invalid_id", "payroll_duplicate_person", "payroll_net_jump", "payroll_over_indicator",
    "subsidy_duplicate", "reimburse_large",
}


def run_city(*extra):
    return subprocess.run([sys.executable, CITY, *ARGS, *extra], capture_output=True, text=True, check=False)


def fen(s):
    return city.fen_of(s)


class CityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = os.path.join(cls.tmp.name, "city.jsonl")
        cls.proc = run_city("--out", cls.out, "--list-planted")
        with open(cls.out, encoding="utf-8") as f:
            cls.lines = f.read().split("\n")
        assert cls.lines[-1] == ""
        cls.lines.pop()
        cls.msgs = [json.loads(ln) for ln in cls.lines]
        cls.planted = [json.loads(ln) for ln in cls.proc.stdout.splitlines()]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_self_check_passes(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr)
        self.assertIn("self-check: ok", self.proc.stderr)

    def test_same_arguments_same_bytes(self):
        other = os.path.join(self.tmp.name, "again.jsonl")
        env = dict(os.environ, PYTHONHASHSEED="123")
        p = subprocess.run([sys.executable, CITY, *ARGS, "--out", other], capture_output=True, env=env, check=False)
        self.assertEqual(p.returncode, 0)
        with open(self.out, "rb") as a, open(other, "rb") as b:
            self.assertEqual(a.read(), b.read())

    def test_other_seed_other_city(self):
        other = os.path.join(self.tmp.name, "seed8.jsonl")
        p = subprocess.run([sys.executable, CITY, "--seed", "8", *ARGS[2:], "--out", other], capture_output=True,
                           check=False)
        self.assertEqual(p.returncode, 0)
        with open(self.out, "rb") as a, open(other, "rb") as b:
            self.assertNotEqual(a.read(), b.read())

    def test_messages_are_well_formed_except_planted_malformed(self):
        dlq_lines = {p["line"] for p in self.planted if p["rule"] == "dlq"}
        self.assertGreaterEqual(len(dlq_lines), 5)
        ids = set()
        for n, m in enumerate(self.msgs, 1):
            err = city.shape_error(m["subject"], m["data"])
            if n in dlq_lines:
                self.assertIsNotNone(err, f"line {n} should be malformed")
                continue
            self.assertIsNone(err, f"line {n}: {err}")
            d = m["data"]
            self.assertEqual(m["subject"].split(".")[2], d["unit_code"])
            self.assertRegex(d["occurred_at"], TIME)
            self.assertNotIn(d["id"], ids)
            ids.add(d["id"])
            if "amount" in d:
                self.assertIsInstance(d["amount"], str)
                self.assertRegex(d["amount"], MONEY)
                self.assertEqual(d["amount"], city.yuan(fen(d["amount"])))  # always two decimals

    def test_time_order(self):
        times = [city.parse_ts(m["data"]["occurred_at"]) for n, m in enumerate(self.msgs, 1)
                 if city.TIME_RE.match(m["data"].get("occurred_at", "")) and
                 city.shape_error(m["subject"], m["data"]) is None]
        self.assertEqual(times, sorted(times))

    def test_payroll_lines_add_up_and_ids_validate(self):
        planted = {p["subject"]["id"]: p["rule"] for p in self.planted if p["subject"]["kind"] == "payroll_line"}
        lines = 0
        accounts = {}
        for m in self.msgs:
            d = m["data"]
            if not m["subject"].startswith("fiscal.payroll.") or city.shape_error(m["subject"], d):
                continue
            self.assertLessEqual(len(d["lines"]), 2000)
            for ln in d["lines"]:
                lines += 1
                key = f"{d['run_id']}/{ln['emp_id']}"
                gross = fen(ln["gross"])
                self.assertEqual(gross, sum(fen(e["amount"]) for e in ln["earnings"]))
                net_ok = fen(ln["net"]) == gross - sum(fen(x["amount"]) for x in ln["deductions"])
                self.assertEqual(net_ok, planted.get(key) != "payroll_arithmetic", key)
                ded = {x["name"]: fen(x["amount"]) for x in ln["deductions"]}
                base = gross - fen(ln["earnings"][3]["amount"])
                self.assertEqual(ded["养老保险"], base * 8 // 100)
                self.assertEqual(ded["住房公积金"], base * 12 // 100)
                taxable = gross - 500000 - sum(ded[k] for k in ("养老保险", "职业年金", "医疗保险", "住房公积金"))
                self.assertEqual(ded["个人所得税"], city.pit(taxable))
                self.assertRegex(ln["phone"], r"^1[3-9]\d{9}$")
                self.assertRegex(ln["account"], r"^62\d{17}$")
                self.assertIn(accounts.setdefault(ln["account"], ln["id_no"]), (ln["id_no"],))
                if planted.get(key) == "payroll_invalid_id":
                    continue
                self.assertTrue(city.id_valid(ln["id_no"]), key)
                birth = city.dt.date(int(ln["id_no"][6:10]), int(ln["id_no"][10:12]), int(ln["id_no"][12:14]))
                end = city.month_end(int(d["period"][:4]), int(d["period"][5:]))
                self.assertTrue(22 <= city.age_on(birth, end) <= 59, key)
        self.assertEqual(lines, 2 * 1500 + 3)  # two periods + the planted extra people

    def test_planted_cover_the_pack(self):
        rules = {p["rule"] for p in self.planted}
        self.assertEqual(RULES - rules, set())
        off = [p for p in self.planted if p["rule"] == "off_hours"]
        self.assertEqual(len(off), 2)  # 23:10 on the day and the Sunday before
        for p in self.planted:
            self.assertGreaterEqual(p["line"], 1)
            self.assertLessEqual(p["line"], len(self.msgs))

    def test_reference_rules_quiet_on_clean_city(self):
        out = os.path.join(self.tmp.name, "clean.jsonl")
        p = run_city("--out", out, "--no-plant")
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out, encoding="utf-8") as f:
            lines = f.read().splitlines()
        problems, hits, dlq, _ = city.verify(lines, city.Calendar(os.path.join(ROOT, "etc", "calendar")))
        self.assertEqual((problems, hits, dlq), ([], [], []))

    def test_pit_table(self):
        self.assertEqual(city.pit(0), 0)
        self.assertEqual(city.pit(300000), 9000)            # 3,000 * 3%
        self.assertEqual(city.pit(1000000), 100000 - 21000)  # 10,000 * 10% - 210
        self.assertEqual(city.id_check_digit("11010519491231002"), "X")  # GB 11643 example

    @unittest.skipUnless(os.environ.get("FW_BIN") or os.path.exists(os.path.join(ROOT, "build", "daemon", "fundwatch")),
                         "no fundwatch binary ($FW_BIN)")
    def test_replay_raises_exactly_the_planted_alerts(self):
        fw = os.environ.get("FW_BIN") or os.path.join(ROOT, "build", "daemon", "fundwatch")
        p = subprocess.run([fw, "replay", "--rules", os.path.join(ROOT, "rules"), self.out], capture_output=True,
                           text=True, cwd=ROOT, check=False)
        alerts = [json.loads(ln) for ln in p.stdout.splitlines() if ln.strip()]
        got = {(a["rule"], a["subject"]["kind"], a["subject"]["id"]) for a in alerts}
        want = {(x["rule"], x["subject"]["kind"], x["subject"]["id"]) for x in self.planted if x["rule"] != "dlq"}
        self.assertEqual(sorted(want - got), [], "planted but not raised")
        self.assertEqual(sorted(got - want), [], "raised but not planted")
        dlq = {x["line"] for x in self.planted if x["rule"] == "dlq"}
        reported = {int(n) for n in re.findall(r"\.jsonl:(\d+): ", p.stderr)}
        self.assertEqual(reported, dlq)
        self.assertEqual(p.returncode, 1)  # the malformed lines make the exit status 1


if __name__ == "__main__":
    unittest.main()
