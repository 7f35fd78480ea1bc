"""verify's text report: every section has a title, and a summary line names the check
nearest its limit in full whenever 120 columns allow it."""
from tabularpg import verify


def test_every_section_has_a_descriptive_title():
    rows = [verify.Check(sec, "an identity", "f", "two_state", 1e-12, 1e-10) for sec in
            ("exact", "solvers", "moments")]
    titles = [x for x in verify.format_table(rows).splitlines() if x.startswith("== ")]
    assert len(titles) == 3 and all(len(t.split()) > 3 for t in titles)
    assert titles[2].startswith("== Exact moments")


def test_summary_names_the_worst_check_in_full_when_it_fits():
    name = "Var[gae] = exact variance"
    rows = [verify.Check("monte carlo", name, "f", "terminal(3,2),gamma=1,T=4", 2.0, 5.1, "max|z|", 1e-6),
            verify.Check("monte carlo", "E[q] = exact expectation", "f", "m", 1.0, 30.7, "chi2", 1e-6)]
    summary = next(x for x in verify.format_table(rows).splitlines() if x.startswith("-- "))
    assert summary.endswith(f"{name} on terminal(3,2),gamma=1,T=4") and "..." not in summary
    long = [verify.Check("exact", "x" * 200, "f", "two_state", 2e-9, 1e-10)]
    summary = next(x for x in verify.format_table(long).splitlines() if x.startswith("-- "))
    assert len(summary) <= 120 and "..." in summary and summary.endswith(" on two_state")
