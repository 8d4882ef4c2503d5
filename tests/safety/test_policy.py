"""The prompt policy: deny-list terms match whatever the case and spacing; clean prompts pass."""
import pytest
from hypothesis import given, strategies as st

from openimagen.errors import ConfigError, PolicyError
from openimagen.safety import PromptPolicy

POLICY = PromptPolicy(("bad word", "forbidden"), "test list")


@pytest.mark.parametrize("prompt", ["a BAD WORD here", "bad-word", "b a d w o r d", "BadWord", "x.forbidden.y",
                                    "ＦＯＲＢＩＤＤＥＮ"])
def test_refused_whatever_the_case_and_spacing(prompt):
    with pytest.raises(PolicyError, match="refused by the prompt policy .test list.: it contains the denied term"):
        POLICY.check([prompt])


def test_message_names_the_prompt_index():
    with pytest.raises(PolicyError, match=r"^prompt\[1\] refused"):
        POLICY.check(["a red circle", "forbidden fruit"])


@given(st.text(alphabet="acegikmoqsuwy ", max_size=40))
def test_prompts_without_the_letters_of_any_term_pass(prompt):
    POLICY.check([prompt])                                   # 'b', 'd', 'f', 'r' never occur: nothing can match


def test_file_with_comments_and_blank_lines(tmp_path):
    f = tmp_path / "deny.txt"
    f.write_text("# a comment\n\nred  circle # trailing comment\n   \n")
    policy = PromptPolicy.from_file(f)
    assert policy.terms == ("red  circle",)
    with pytest.raises(PolicyError):
        policy.check(["A Red-Circle"])
    policy.check(["a blue circle"])


def test_unreadable_file_is_one_line_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read it"):
        PromptPolicy.from_file(tmp_path / "missing.txt")
    bad = tmp_path / "bin.txt"
    bad.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="UTF-8"):
        PromptPolicy.from_file(bad)


def test_default_list_is_shipped_and_refuses_its_terms():
    policy = PromptPolicy.default()
    assert len(policy.terms) >= 3
    with pytest.raises(PolicyError):
        policy.check([policy.terms[0].upper()])
    policy.check(["a red circle above a blue square", "pizza", "grinning face"])
