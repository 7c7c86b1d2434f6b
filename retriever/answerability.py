"""Answerability: is the thing a question asks about in the knowledge base at all?

A dense score cannot tell "房地产税试点在哪些城市？" from an answerable question: the year and the word
试点 land it near some passage. What settles it is the question's subject. If the most specific thing
it names (房地产税, LPR, 车辆购置税) appears nowhere in the knowledge base, the passages it lands near
are about something else.

The subject words are the question's nouns and noun compounds (jieba POS tags over the domain
dictionary, dictionary words only; a one-character noun joins the noun before it: 房地产 + 税). Years,
issuing bodies, stopwords, cue words (什么时候) and the generic words of these reports (工作, 措施,
金融) prove nothing and are dropped. Each word is weighed by how specific it is in general Chinese: its
IDF from jieba's own dictionary frequencies (``general_idf``).

The knowledge base covers a word when a passage uses it as a word of its own or as the head of a longer
one (个人住房贷款 covers 住房贷款); an occurrence that runs on into a longer word (房地产 inside
房地产税, 国债 inside 国债期货) does not count. A glossary alias counts too (央行 for 人民银行).

``uncovered_subject`` returns the most specific subject word when the knowledge base lacks it. A word in
Latin letters in a Chinese question (ATM, App) names a thing exactly: its absence is ``decisive``. A
Chinese word may be a plain-language paraphrase (外地来城里打工的人 for 新市民): its absence only raises
the bar the passages must clear (``answer.SUBJECT_MARGIN``). A quoted name (“…”, 《…》) is the most
specific subject of all, and covered by any verbatim occurrence: the user quotes the exact words. An
everyday word (片子, 稿件) in a question whose other subject words the knowledge base holds is a
paraphrase (``paraphrased``); a glossary term the documents write in short (农信 for 农村信用社) is
mentioned (``abbreviated``).

A subject the knowledge base covers does not make every question about it answerable: "首贷续贷中心
试点是哪一年开始的？" asks for a date the reports never give. ``unmet_detail`` finds the kind of detail a
question asks for (a date, a rank, a figure in a unit, an address, conditions or a standard, the steps,
a bank or an office by name, the members of a named group, personal advice) and looks for it in the
passages' sentences about the subject; when they lack it, the question is refused, naming what is
missing. A figure or a rank the question states itself ("39家后备企业里有几家") is no answer to it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import pairwise

from zhiwen.core.text import sentences
from zhiwen.core.tokenize import domain_tagger, general_tokenizer, stopwords
from zhiwen.core.vocab import without_issuers, years_named

from .intent import cue_words, generic_words
from .topics import Glossary, load_glossary

# A subject word this specific (jieba frequency ≤ about 370 in 60 million) or more is one whose absence
# matters; commoner words (外地 ≈ 9.6, 城市 ≈ 7.8) are how people paraphrase. Chosen on the golden set.
MIN_IDF = 12.0
COMPOUND_BONUS = 2.0
# An uncovered subject word commoner than this (jieba frequency above about 130 in 60 million: 片子,
# 稿件) is taken for a paraphrase when the knowledge base holds at least HELD_SHARE of the question's
# other subject words, weighed by specificity. Chosen on the golden set.
EVERYDAY_IDF = 13.0
# A subject word this rare in general Chinese (jieba frequency about 30 or less in 60 million: 天海) is a
# name: the date asked of it must be in the sentences that name it.
NAME_IDF = 14.5
HELD_SHARE = 0.5
# What follows the word whose figure or holder a question asks for: "利率是多少", "院长是谁", "额度最高多少",
# "存款余额是多少" (余额, 金额 and 比例 are cue words, never subject words: the word before them is).
_MEASURED_CUE = (
    r"(?:余额|金额|比例)?(?:是|为|有|要|能|可以|可|会|最高|最多|最低|一般|大概|具体|每年|每月|每张|每家|每户|每人)*"
    r"(?:多少|是谁|几[个家天年次项种]|多高|多大|多长|多久|百分之几|怎么规定|如何规定)"
)
# What precedes the thing a question counts: "多少个电动汽车充电桩", "几家银行" (not "哪几个关键字": which
# ones, named by their instances rather than by the word).
_COUNTED_CUE = r"(?:多少|(?<!哪)几)(?:个|家|台|座|辆|套|张|项|条|件|种|类|所|处)"
# How a person asks what to do about their own affairs (how to activate, unfreeze, apply; is it worth it;
# should I): a question no work report answers unless it names the report's own subject.
_PERSONAL = re.compile(
    r"划算|值得|值不值|要不要|该不该|怎么才能|如何才能|能不能|可不可以|需要带|要带什么|激活|解冻|挂失|补办|"
    r"怎么算|怎么办理|如何办理|怎么申请|如何申请|怎么查|如何查询|怎么收费|什么时候开通|怎么开通|怎么注册|"
    r"怎么开|怎么领|如何领取|怎么取|怎么退|能退吗|怎么选|怎么买|合适吗|合适|哪个好|"
    r"哪个风险|追回|"
    # whether to buy, which to buy, where prices go: investment advice, which no report gives
    r"适合[^，。？?]{0,10}吗|还是[^，。？?]{0,10}好|比较好|走势|行情|该买|买什么|买哪|选哪|划不划算|"
    r"怎么报销|如何报销|需要准备|要准备哪些|"
    # a person's own dues and claims: paying in, filing, drawing out, transferring
    r"补缴|填报|怎么备案|如何备案|能领|领多少|过户|开户|销户|理赔|退保|投保|续保|交哪些税|交多少税"
)
# The kinds of a financial instrument or levy, as the last character of its name (房地产税, 重疾险, 社保卡,
# 手续费, 利率, 国债). 券 and 金 are left out: 购物券 and 本金 are how people paraphrase 消费券 and 还本.
INSTRUMENTS = ("税", "险", "卡", "费", "率", "债")
# A payment named by three characters or more ending in 金 (养老金, 保险金, 公积金, 违约金) is one too; a
# two-character one (本金, 资金) is an everyday word.
PAYMENT = "金"
# The heads terms of art are built on: 供应链金融, 数字人民币, 助学贷款, 巨灾保险.
DOMAIN_HEADS = (
    "金融",
    "贷款",
    "信贷",
    "保险",
    "融资",
    "基金",
    "债券",
    "理财",
    "存款",
    "支付",
    "结算",
    "人民币",
    "资产",
    "票据",
    "汇率",
)
_ASIDE = re.compile(r"[（(][^（）()]*[）)]")
# Words naming only the kind of figure asked (规模有多大, 金额是多少): the question's other words say of what.
MEASURES = frozenset(
    [
        "规模",
        "数量",
        "总数",
        "数目",
        "总量",
        "总额",
        "次数",
        "人数",
        "户数",
        "家数",
        "金额",
        "数额",
        "数字",
        "时间",
        "期限",
        "年限",
        "时长",
    ]
)
# A sentence this short is an item's headline; its figures follow in the next sentence.
HEADLINE_CHARS = 20
_NOUN = re.compile(r"^(n|vn|j|eng)")  # nouns (n, nr, ns, nt, nz), verbal nouns, abbreviations, Latin
_FUNCTION = re.compile(r"^(u|p|c|r|d|y|e|o|m|q|f)")  # particles, prepositions, pronouns, numbers …
_LATIN = re.compile(r"[A-Za-z][A-Za-z0-9]+")
_QUOTED = re.compile(r"[“《「]([^”》」]{2,20})[”》」]")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_VERDICTS = frozenset("好坏对错")

Contexts = Callable[[str], Iterable[str]]  # term -> passages of the knowledge base that contain it


@dataclass(frozen=True)
class Subject:
    """One word a question asks about; ``specificity`` is its general-language IDF; ``decisive`` means
    its absence settles the question (Latin letters in a Chinese question name one thing exactly; a
    ``measured`` word is what the question wants a figure of); ``quoted`` that the question quotes it."""

    word: str
    specificity: float
    decisive: bool = False
    quoted: bool = False


def general_idf(word: str) -> float:
    """How specific ``word`` is in general Chinese: log(total / frequency) over jieba's dictionary.

    A word the dictionary lacks, or lists only as a phrase (frequency 3 or less, as jieba lists most
    compounds), is a compound: rarer than its rarest dictionary piece, counted as ``COMPOUND_BONUS``
    more (e² ≈ 7 times rarer). A Latin word is maximally specific.
    """
    tok = general_tokenizer()
    if not _CJK.search(word):
        return math.log(tok.total)
    freq = tok.FREQ.get(word, 0)
    if freq > 3:
        return math.log(tok.total / freq)
    pieces = [p for p in tok.cut(word, HMM=False) if p != word and len(p) > 1]
    pieces = pieces or [p for p in tok.cut_for_search(word, HMM=False) if p != word and len(p) > 1]
    freqs = [tok.FREQ.get(p, 0) for p in pieces if tok.FREQ.get(p, 0) > 3]
    return (
        min(math.log(tok.total / min(freqs)) + COMPOUND_BONUS, math.log(tok.total))
        if freqs
        else math.log(tok.total)
    )


def subjects(question: str, glossary: Glossary, english: bool = False) -> list[Subject]:
    """The words ``question`` asks about, most specific first.

    ``english``: in an English question a Latin word proves nothing (the documents are Chinese).
    """
    text = _QUOTED.sub(" ", question)
    for year in years_named(question):
        text = text.replace(f"{year}年", " ")
    text = without_issuers(text)
    drop = stopwords() | generic_words()
    cues = cue_words()
    words = [
        word
        for word, noun in joined_words(text)
        if noun and not _dropped(word, drop, cues) and (len(word) > 1 or _LATIN.fullmatch(word))
    ]
    found = [Subject(q, math.inf, quoted=True) for q in _QUOTED.findall(question)]
    for word in dict.fromkeys(words):
        latin = bool(_LATIN.search(word))
        if not (latin and english):
            found.append(Subject(word, general_idf(word), decisive=latin))
    return sorted(found, key=lambda s: -s.specificity)


def joined_words(text: str) -> list[tuple[str, bool]]:
    """``text`` as (word, is a noun) in order, dictionary words of the domain dictionary.

    A one-character noun after a noun joins it (房地产 + 税 → 房地产税): it names what kind of thing the
    noun is. A run of single characters around a noun is a word jieba's dictionary lacks (重疾险 comes
    out as 重/疾/险): it is joined into one noun, as specific as a word can be.
    """
    tagged = list(domain_tagger().cut(text))
    words: list[tuple[str, bool]] = []
    at = 0
    while at < len(tagged):
        end = at
        while end < len(tagged) and _loose_character(*tagged[end]):
            end += 1
        # a verb at either end of the run is the question's, not a piece of the word (买 of 买重疾险选)
        while end - at > 2 and tagged[end - 1][1].startswith(("v", "zg")):
            end -= 1
        while end - at > 2 and tagged[at][1].startswith(("v", "zg")):
            words.append((tagged[at][0], False))
            at += 1
        run = tagged[at:end]
        if len(run) > 1 and any(_NOUN.match(flag) for _, flag in run):
            words.append(("".join(w for w, _ in run), True))
            at = end
            continue
        word, flag = tagged[at]
        noun = bool(_NOUN.match(flag)) or bool(_LATIN.fullmatch(word.strip())) or _noun_phrase(word, flag)
        if noun and len(word) == 1 and words and words[-1][1]:
            words[-1] = (words[-1][0] + word, True)
        else:
            words.append((word, noun))
        at += 1
    return words


def _noun_phrase(word: str, flag: str) -> bool:
    """Whether a word jieba lists as a set phrase (``l``) ends in a noun: 个人所得税 (所得税), 定期存款
    (存款), not 融资难 or 怎么办."""
    if flag != "l":
        return False
    tails = [p for p in general_tokenizer().cut_for_search(word, HMM=False) if p != word and word.endswith(p)]
    head = max(tails, key=len, default="")
    return bool(head) and all(_NOUN.match(f) for _, f in domain_tagger().cut(head))


def _loose_character(word: str, flag: str) -> bool:
    """A single character that may be a piece of an unknown word: not a function word, punctuation or a
    verdict ("买金条还是积存金好？": 好 judges, it names nothing)."""
    return (
        len(word) == 1
        and bool(_CJK.match(word))
        and not _FUNCTION.match(flag)
        and word not in stopwords()
        and word not in _VERDICTS
    )


def _dropped(word: str, drop: frozenset[str], cues: frozenset[str]) -> bool:
    """A stopword, a generic word, or part of a cue (时候 of 什么时候): it names no subject."""
    return word.lower() in drop or any(word in cue for cue in cues)


def pieces(word: str) -> list[str]:
    """Parts of ``word`` to look for nearby, longest first: its dictionary pieces, then its characters
    (车辆购置税: 购置税, 车辆, 购置, then 车, 辆 …), generic words left out."""
    tok = general_tokenizer()
    words = sorted({p for p in tok.cut_for_search(word, HMM=False) if p != word and len(p) > 1}, key=len)
    chars = [c for c in word if _CJK.match(c)]
    drop = stopwords() | generic_words()
    return [p for p in [*reversed(words), *chars] if p not in drop]


def covers(passage: str, word: str) -> bool:
    """Whether ``passage`` uses ``word`` as a word or as the head of a longer one, not inside another.

    An occurrence counts when it ends where a word of the passage ends (``joined_words`` on a window
    around it): 个人住房贷款 covers 住房贷款, 房地产税 does not cover 房地产.
    """
    at = passage.find(word)
    while at >= 0:
        left = max(0, at - 8)
        window = passage[left : at + len(word) + 8]
        end, offset = at + len(word) - left, 0
        for piece, _ in joined_words(window):
            offset += len(piece)
            if offset >= end:
                break
        if offset == end:
            return True
        at = passage.find(word, at + 1)
    return False


def covered(subject: Subject, contexts: Contexts, glossary: Glossary) -> bool:
    """Whether a passage of the knowledge base ``covers`` ``subject`` or one of its glossary aliases (a
    quoted subject: contains it verbatim).

    ``contexts(term)`` gives the knowledge base's passages (and titles) containing ``term`` verbatim.
    """
    names = [subject.word, *glossary.aliases(subject.word)]
    if any(subject.quoted or covers(passage, name) for name in names for passage in contexts(name)):
        return True
    return written_with_insert(subject.word, contexts)


def written_with_insert(word: str, contexts: Contexts) -> bool:
    """Whether the knowledge base writes the two-word compound ``word`` with a modifier inserted between
    its words (专项资金 as 专项信贷资金): both words of two characters or more, at most two characters
    between them, nouns throughout ("专项信贷资金", not "专项用于资金")."""
    tok = general_tokenizer()
    parts = [p for p in tok.cut(word, HMM=False) if p.strip()]
    if len(parts) == 1:  # a dictionary word of its own (专项资金): its two halves
        halves = [p for p in tok.cut_for_search(word, HMM=False) if p != word and len(p) > 1]
        parts = halves if "".join(halves) == word else parts
    if len(parts) != 2 or min(len(p) for p in parts) < 2:
        return False
    head, tail = parts
    split = re.compile(rf"{re.escape(head)}[\u4e00-\u9fff]{{1,2}}{re.escape(tail)}")
    for passage in contexts(head):
        for found in split.finditer(passage):
            if covers(passage, found[0]) and all(noun for _, noun in joined_words(found[0])):
                return True
    return False


def measured(question: str, found: Sequence[Subject]) -> Subject | None:
    """The subject word whose figure or holder ``question`` asks for: the one right before its cue (利率 in
    "贷款利率是多少", 院长 in "院长是谁", 期限 in "期限是怎么规定的") or right after a count ("多少个电动汽车
    充电桩"), unless it names only the kind of figure (``MEASURES``: 规模)."""
    for subject in found:
        named = not subject.quoted and subject.word not in MEASURES
        word = re.escape(subject.word)
        if named and re.search(f"{word}{_MEASURED_CUE}|{_COUNTED_CUE}{word}", question):
            return subject
    return None


_NUMBER = re.compile(r"\d+|[IVX]+|[ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩ]+")  # in figures or in Roman numerals


def uncovered_subject(
    question: str, contexts: Contexts, glossary: Glossary, english: bool = False
) -> Subject | None:
    """The subject word of ``question`` the knowledge base lacks, or None. In this order:

    - a ``measured`` word the knowledge base lacks, decisive: the question wants a figure of a thing no
      document names (面额, 利率), whatever else it shares with them;
    - the most specific subject word of a personal how-to question (``_PERSONAL``: "银行卡被冻结了怎么
      解冻？"), decisive when uncovered: work reports say what an office did, never how a person handles
      their own card, loan or policy, so no paraphrase of them asks that way;
    - a most specific subject word naming a tax, an insurance, a card, a fee, a rate or a bond
      (``INSTRUMENTS``: 房地产税, 重疾险), or a payment (``PAYMENT``: 养老金), decisive when uncovered: an
      instrument is called by its name, and a report that covers it uses that name;
    - a most specific subject word built as a term of art whose modifier the knowledge base never
      writes (``foreign_modifier``: 供应链 of 供应链金融), decisive when uncovered;
    - the most specific subject word when it is at least ``MIN_IDF`` specific, uncovered and not
      ``paraphrased`` (not decisive: it raises the relevance bar);
    - else the first decisive word (Latin) that is uncovered.
    """
    # a number ("交满15年", the III of 巴塞尔协议III) is no subject: it says how much or which of the
    # subject, not what it is
    found = [s for s in subjects(question, glossary, english) if not _NUMBER.fullmatch(s.word)]

    def lacked(subject: Subject) -> bool:
        return not covered(subject, contexts, glossary) and not written_alike(
            subject.word, question, contexts
        )

    asked = measured(question, found)
    if asked is not None and lacked(asked):
        return replace(asked, decisive=True)
    first = found[0] if found and not found[0].quoted else None
    # "（微信端）" qualifies a question, it names no subject
    personal = first is not None and _PERSONAL.search(question) and first.word in _ASIDE.sub(" ", question)
    instrument = first is not None and (
        first.word.endswith(INSTRUMENTS) or (len(first.word) > 2 and first.word.endswith(PAYMENT))
    )
    foreign = first is not None and bool(foreign_modifier(first.word, contexts))
    if first and (personal or instrument or foreign) and lacked(first):
        return replace(first, decisive=True)
    top = [s for s in found[:1] if s.specificity >= MIN_IDF]
    for subject in top + [s for s in found if s.decisive and s not in top]:
        if lacked(subject) and not paraphrased(subject, found, contexts, glossary):
            return subject
    return None


_ALIKE_CONTEXT = 2


def written_alike(word: str, question: str, contexts: Contexts) -> bool:
    """Whether the knowledge base writes ``word`` with the question's own characters around it
    (``_ALIKE_CONTEXT`` before or after): jieba cut the question across a word ("在局内网开了什么栏目" gives
    网开, the report writes "在局内网开辟"), so the word is the question's reading, not a thing the knowledge
    base lacks. A word the knowledge base writes only inside a longer one (房地产 of 房地产税) stays lacking
    unless the question writes that longer word too."""
    at = question.find(word)
    if at < 0:
        return False
    before = question[max(0, at - _ALIKE_CONTEXT) : at]
    after = question[at + len(word) : at + len(word) + _ALIKE_CONTEXT]
    spans = [
        text
        for text in (before + word, word + after)
        if len(text) == len(word) + _ALIKE_CONTEXT and all(_CJK.match(c) for c in text)
    ]
    return any(span in passage for span in spans for passage in contexts(word))


def foreign_modifier(word: str, contexts: Contexts) -> str:
    """The part of a compound ``word`` naming which kind of a financial thing it is (供应链 of 供应链金融,
    数字 of 数字人民币) when the knowledge base never writes it, not even inside another word; "" otherwise.

    A term of art is built as modifier + head (``DOMAIN_HEADS``: 金融, 贷款, 保险 …); a report about
    供应链金融 would write 供应链 somewhere. A paraphrase may lack the compound, but its pieces are
    everyday words the reports use (小额 of 小额贷款)."""
    for head in DOMAIN_HEADS:
        modifier = word.removesuffix(head)
        if modifier != word and len(modifier) >= 2 and _CJK.match(modifier):
            return "" if any(True for _ in contexts(modifier)) else modifier
    return ""


def paraphrased(subject: Subject, found: Sequence[Subject], contexts: Contexts, glossary: Glossary) -> bool:
    """Whether ``subject`` is an everyday word standing for the reports' own (片子 for 警示教育片, 稿件
    for 信息): a word jieba's dictionary lists, commoner than ``EVERYDAY_IDF`` in general Chinese, in a
    question whose other subject words (``found``) the knowledge base mostly holds (``HELD_SHARE`` of
    their specificity or more)."""
    listed = general_tokenizer().FREQ.get(subject.word, 0) > 3  # a word of its own, not a compound (房地产税)
    if subject.decisive or subject.quoted or not listed or subject.specificity >= EVERYDAY_IDF:
        return False
    rest = [s for s in found if s is not subject and not s.quoted]
    mass = sum(s.specificity for s in rest)
    held = sum(s.specificity for s in rest if covered(s, contexts, glossary))
    return mass > 0 and held / mass >= HELD_SHARE


def abbreviations(term: str) -> list[str]:
    """The short forms Chinese makes of ``term`` from its words' first characters: 农村商业银行 (农村 +
    商业银行) gives 农商 and 农商行, 农村信用社 gives 农信 and 农信社. Empty for a one-word term."""
    words = [w for w in general_tokenizer().cut(term, HMM=False) if w.strip()]
    if len(words) < 2:
        return []
    initials = "".join(w[0] for w in words)
    return [initials, initials + words[-1][-1]]


def abbreviated(term: str, contexts: Contexts) -> bool:
    """Whether the knowledge base uses a short form of ``term`` (``abbreviations``) as a word: 农信 in
    "农信系统不良贷款" stands for 农村信用社."""
    return any(covers(passage, short) for short in abbreviations(term) for passage in contexts(short))


# What kind of detail a question asks for (its cue), and what a passage must hold to give it. A number
# counts in any form the reports write one: digits, Chinese numerals, or anonymisation marks standing
# for digits (*.*亿元, **次): a hidden figure is still a figure the reports give.
_NUMERAL = r"(?:\d[\d.,，]*|[*][*.]*|[一二三四五六七八九十百千万两半〇零几]+)"
_ANY_UNIT = (
    r"%|‰|％|亿|万|千|元|个|家|户|次|期|项|件|条|名|位|人|届|种|类|倍|笔|批|支|所|份|篇|年|月|日|天|周|季度|"
    r"小时|分钟|工作日|学时|课时|岁|场|轮|辆|套|张|台|座|处|级|成|公里|米|吨|公斤|千克"
)
# The units a count or an amount must come in when the question names them: "多少家" is answered by
# "12家", not by "92支"; "多少钱" by an amount in 元; "比例" by a percentage.
UNITS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"百分之(?:多少|几)|百分比"), "%|％|‰|成|个百分点"),  # "额度的百分之多少" asks a share
    (re.compile(r"(?:多少|几)(?:家|户)"), "家|户"),
    (re.compile(r"(?:多少|几)(?:个?人|名|位|人次)"), "人|名|位|人次"),
    (re.compile(r"(?:多少|几)(?:次|期|届|批|轮)"), "次|期|届|批|轮"),
    (
        # "单户最高能贷多少": a sum lent
        re.compile(
            r"多少(?:钱|资金)|金额|余额|资本|收入|利润|额度|费用|经费|价格|面额|奖补|补贴|奖励|罚款"
            r"|(?:贷|借)多少(?![户家笔次个人])"
        ),
        "元|亿|万",
    ),
    (re.compile(r"(?:多少|几)件"), "件"),
    # a duration: "最长能贷几年", "每期培训几天" are answered by 年 or 天, not by an amount
    (re.compile(r"(?:多少|几)(?:年|个月|天|日|小时|周)|多长时间"), "年|个月|月|天|日|小时|周|个?工作日"),
    (re.compile(r"(?:多少|几)(?:项|条)"), "项|条"),
    (re.compile(r"(?:多少|几)(?:篇|份|本|部)"), "篇|份|本|部"),
    (re.compile(r"多少(?:美元|欧元|日元|港币|港元|英镑)"), "美元|欧元|日元|港币|港元|英镑"),
    (re.compile(r"(?:多少|几)(?:场|次)"), "场|次"),
    (re.compile(r"多少岁|几岁|(?:年龄|岁数)[^，。？?]{0,4}(?:多少|多大|几)"), "岁|周岁"),
    (re.compile(r"(?:多少|几)(?:座|所|处)"), "座|所|处"),
    (re.compile(r"(?:多少|几)(?:台|辆|套|张)"), "台|辆|套|张"),
    (re.compile(r"率|比例|比率|占比|百分之几|增幅|增速"), "%|％|‰|成|个百分点"),
)
# A year is written in figures (2022年, **年, 二〇二二年); "三年行动计划" is a span of time, not a date.
_YEAR = r"(?:\d{2,4}|[*]+|[〇零一二三四五六七八九]{2,4})\s*年"
_DATE = re.compile(
    rf"{_YEAR}|{_NUMERAL}\s*(?:月|日|号|季度)|年初|年底|年末|年中|月初|月末|月底|上半年|下半年"
)
# A question asking the month or the day ("几月份出台的") is not answered by the year alone.
_FINER_THAN_YEAR = re.compile(r"几月|哪个月|哪一个月|几号|哪一天|哪天")
_AS_OF = re.compile(r"(?:截至|截止|截止到|到)(?:\d{4}年)?$")
DETAILS: dict[str, re.Pattern[str]] = {  # the kind of detail, named as a refusal says it -> its cue
    # Whether something is worth it for the asker, which to pick: no work report advises a person.
    "个人建议": re.compile(
        r"划算|划不划算|值不值|该不该|哪个好|哪种好|选哪|买哪|该买|合适吗|(?:买|选|投|存)[^，。？?]{0,8}(?:比较|更)好"
        # where prices go, what to buy, which is cheaper or best for the asker
        r"|涨还是跌|会涨吗|会跌吗|推荐几|推荐一下|有没有[^，。？?]{0,10}推荐|推荐[^，。？?]{0,4}吗|还保值|保值吗|哪个[^，。？?]{0,4}更(?:低|高|便宜|省钱)|最合适"
        # which bank or product pays or costs the asker most: "哪家银行利息最高", "装修贷和消费贷哪个利息低"
        r"|哪(?:家|个|种|只|款)[^，。？?]{0,12}(?:利息|利率|收益率?|费率|价格|手续费|年化)[^，。？?]{0,3}(?:最|更)?"
        r"(?:高|低|便宜|贵)"
    ),
    "具体日期": re.compile(r"哪一天|哪天|几号|几月|哪一年|哪年|何时|什么时候|什么时间|日期"),
    # Which one came first, or led: answered only by a ranking, not by the list of who took part.
    "名次": re.compile(r"第几|排名|排第|第一名|一等奖|冠军|(?:最多|最高|最大|最少|最低)的是哪"),
    # What a named company does: answered only where a passage says its trade, not where it is named.
    "主营业务": re.compile(
        r"(?:什么|哪个|哪一个)行业|主营|经营范围|哪一行|(?:公司|企业|集团)[^，。？?]{0,6}(?:是|主要)做什么"
        r"|做什么(?:产品|业务|生意)|生产什么"
    ),
    "地址或联系方式": re.compile(
        r"地址(?:是|在)|什么地址|怎么联系|联系方式(?:是|有)|联系电话(?:是|多少)|电话是多少|网址|网站是"
    ),
    # Where a meeting or a class was held: answered only by a place ("在石家庄市委党校举办"), not by the date
    # and what was signed there.
    "举办地点": re.compile(
        r"在(?:哪[里儿个]?|什么地方|何处)(?:场馆|会场|地方|城市)?(?:开|办|举办|召开|举行)|(?:举办|召开|举行)(?:地点|场地)|"
        r"(?:地点|场馆|会场)(?:在|是)|设在哪"
    ),
    # Which cities or counties did something: answered only by places named (围场县, *县), not by 各市.
    "具体地方": re.compile(r"哪(?:几|些)?个?(?:市|县|区|省|城市|县区|地市)(?![场委级长])"),
    # Who held a post or spoke: answered only by a person named (or anonymised: **市长), not by the post.
    "人员姓名": re.compile(
        r"(?:组长|负责人|主持人|市长|书记|局长|行长|领导|专家|老师|讲师)[^，。？?]{0,4}(?:是谁|姓什么|叫什么名字)"
        r"|请了(?:谁|哪些专家|哪几位|哪些人)|哪(?:几|些)?位(?:市领导|领导|专家|老师)"
    ),
    # What a product, a lecture or a campaign is called: answered only where a passage gives its name,
    # quoted (“双送双问”, 《…》), not where it says one was made.
    "具体名字": re.compile(
        r"(?P<thing>产品|党课|讲座|课程|专题|文件|活动|项目|品牌|险种)[^，。？?]{0,6}(?:叫什么|叫啥|什么名字|名称|题目|标题)"
        r"|(?:题目|标题)(?:是|叫)|哪(?:几|些)(?:个|种)?险种"
        r"|(?:改|更)(?:成|为|名为?)了?(?:什么|啥)(?:名字|名称)|新名字(?:是|叫)"  # a new name
    ),
    # 比例 or 额度 alone asks for no figure ("提高加计扣除比例后有何规定"): a figure is asked by 多少, 几 …
    "具体数字": re.compile(
        r"多少|(?<!哪)几(?:个|家|户|次|期|项|件|条|名|位|人|届|种|倍|笔|批|支|所|份|篇|年|天|成)"
        r"|多大|多高|多长|多久|百分之几"
    ),
    # A comparison the question names ("跟去年比是多了还是少了", "和全省平均水平相比算高还是低"): given only
    # where a passage compares, with the thing compared to (同比 for 去年).
    "对比情况": re.compile(
        r"(?:跟|和|与|同)(?P<target>[\u4e00-\u9fff]{1,8}?)(?:相)?比(?!例|重|率)[，,]?[^，。？?]{0,12}?"
        r"(?:是|算)?(?:多了|少了|高了|低了|更高|更低|偏高|偏低|高还是|多还是|快还是)"
        r"|(?:多了|高|增加|上升|涨|快)还是(?:少了|低|减少|下降|跌|慢)"
    ),
    # What it takes to apply, and how: answered only where the passages state conditions or steps.
    "申请条件或标准": re.compile(
        r"什么条件|哪些条件|条件是什么|具体条件|需要满足|要满足|门槛|什么资格|哪些资格|认定标准|标准是什么|什么标准|哪些标准"
        r"|(?:评定|评选|考核|验收|评价)标准"
    ),
    "办理流程": re.compile(
        r"什么流程|哪些流程|流程是什么|办理流程|申请流程|什么手续|哪些手续|(?:什么|哪些)渠道(?:预约|申请|报名|办理)|怎么预约|如何预约|"
        r"在哪(?:里|儿)?(?:可以|能)?(?:预约|报名|申请|领取|领到|领)|去哪(?:里|儿)?(?:预约|报名|申请|领取|领)|"
        r"(?:准备|提交|提供|带|交)(?:什么|哪些)(?:相关)?材料"  # not "警示教育用了哪些材料": teaching material
    ),
    # Which bank, court, exchange: answered only by one named ("市农商银行"), not by the kind in general.
    "具体名称": re.compile(
        r"(?:哪(?:一|几)?(?:家|个|所)|(?:都|分别|具体)[是有]哪些)[\u4e00-\u9fff]{0,4}?"
        r"(?P<kind>银行|城商行|农商行|法院|交易所|医院|大学|学校|保险公司|部门|机构|单位)"
        r"|(?P<after>银行|城商行|农商行|法院|交易所|医院|大学|学校|保险公司|部门|机构|单位)(?:具体|都|分别)?"
        r"是哪(?![两二三四五六七八九十])(?:一|几|些)?(?:家|个|所)?"
        # what one is called: "那家城商行叫什么名字", "原来叫什么"
        r"|(?P<called>银行|城商行|农商行|公司|机构|部门|单位)[^，。？?]{0,4}叫(?:什么|啥)"
    ),
    # Which ones a group holds ("五大产业集群分别是哪五个", "“双送双问”指什么", "由哪三方组成"): answered
    # only where a passage lists them beside the group's name, not where it names the group.
    "具体名单": re.compile(
        r"分别(?:是|指|为|有|叫)|都(?:是|有)哪些|具体(?:指|包括|是)哪些|(?:具体|都)包括(?:什么|哪些)"
        r"|哪(?:[两二三四五六七八九十]+|\d+)(?:个|家|方|项|类|种|条|大|位|批|件|所)?|是哪几|哪几家"
        r"|(?:具体)?规定了哪些|有哪些(?:具体)?(?:内容|条款)"
    ),
    # What a named group or a quoted name stands for ("“双送”指的是送什么", "“浦江经验”讲的是什么经验"):
    # answered, as its members are, only where a passage spells it out beside the name.
    "具体含义": re.compile(
        r"指的?是(?:什么|哪些)|指什么|各指|什么意思|讲的(?:到底)?是什么|到底是什么|送什么|问什么"
        r"|是什么(?:经验|工程)"
    ),
}
# Banks and courts in general, not by name: "我市中小银行" names no bank. (人民法院 is left out: "被告
# 住所地人民法院" is how a statute names the court.)
GENERIC_NAMES = frozenset(
    [
        "中小银行",
        "村镇银行",
        "商业银行",
        "政策性银行",
        "国有银行",
        "股份制银行",
        "地方银行",
        "外资银行",
        "大银行",
        "小银行",
        "各银行",
        "有关银行",
        "相关银行",
        "部分银行",
        "合作银行",
        "各级法院",
        "证券交易所",
    ]
)


# An enumeration: the items of a list of conditions or steps ("（一）", "1.", "①"); not "；", which long
# report sentences use between measures.
_ENUMERATION = r"（[一二三四五六七八九十]）|\([1-9一二三四五六七八九]\)|[1-9][.、．]|[①②③④⑤⑥⑦⑧⑨]"
# What a passage says when it gives conditions, steps or a way to reach an office: a threshold, a figure,
# a list, a modal verb. "对符合续贷条件的市场主体实行无还本续贷" names conditions without giving any.
GIVEN = {
    "申请条件或标准": re.compile(
        rf"须|需|应|不低于|不超过|不少于|不高于|年满|具备|以上|以下|之间|\d|{_ENUMERATION}"
        r"|(?:作为|为)[^，。；]{0,12}标准"  # "把群众满意作为评判工作的根本标准"
    ),
    "办理流程": re.compile(
        rf"步骤|提交|提供|材料|手续|申请表|复印件|原件|证明|身份证|登录|网上|线上|窗口|首先|然后|程序|\d|{_ENUMERATION}"
    ),
    "名次": re.compile(
        r"第[一二三四五六七八九十\d]+|首位|榜首|居首|[一二三]等奖|冠军|最多|最高|最大|最少|最低"
    ),
    "主营业务": re.compile(r"主营|从事|经营|生产|制造|研发|行业|产业|领域|业务|产品|服务商|供应商"),
    "地址或联系方式": re.compile(r"地址|位于|路\d|号|电话|热线|\d{7,}|网址|邮箱|www|https?:|\.cn|\.com"),
    "具体名字": re.compile(r"[“《「][^”》」]{2,40}[”》」]"),
    "举办地点": re.compile(
        r"在[^，。；：]{2,24}?(?:举办|召开|举行|开班|开展|进行|办班)|位于|会场|会议室|党校|礼堂|酒店|宾馆|大厦|"
        r"基地|学院|大学"
    ),
}


def asked_units(question: str) -> str:
    """The units (``UNITS``) the figure ``question`` asks for must come in, as a regex alternation; "" when
    it names none."""
    return next((unit for cue, unit in UNITS if cue.search(question)), "")


def detail_given(kind: str, question: str, clause: str) -> bool:
    """Whether ``clause`` gives the detail of ``kind`` that ``question`` asks for (in its unit, if it
    names one)."""
    if kind == "个人建议":  # a report says what an office did, never what a person had better do
        return False
    if kind == "对比情况":
        return compared(question, clause)
    if kind == "具体日期":  # "截至一季度末" dates a statistic, not an event
        finer = _FINER_THAN_YEAR.search(question)
        return any(
            not _AS_OF.search(clause[max(0, m.start() - 6) : m.start()])
            and not (finer and re.fullmatch(_YEAR, m[0]))
            for m in _DATE.finditer(clause)
        )
    if kind == "举办地点" and places(clause):
        return True
    if kind == "具体地方":
        return cities_named(clause)
    if kind == "具体名字":  # the name in the clause of the thing named ("开展“双送双问”帮扶活动")
        thing = DETAILS[kind].search(question)["thing"]
        clauses = [c for c in re.split(r"[，,；;。]", clause) if thing and thing in c] or [clause]
        return any(GIVEN[kind].search(c) for c in clauses)
    if kind == "人员姓名":
        return persons(clause)
    if kind in GIVEN:
        # a rank the question states before the one it asks ("排第三，那排第一的是哪个市") is none
        stated = GIVEN[kind].findall(question)[:-1] if kind == "名次" else []
        return any(m[0] not in stated for m in GIVEN[kind].finditer(clause))
    if kind == "具体名称":
        asked = DETAILS[kind].search(question)
        return bool(asked and names_of(asked["kind"] or asked["after"] or asked["called"], clause, question))
    part = breakdown(question)
    # a share of a stated total comes in the total's unit unless the question names another
    units = asked_units(question) or (part and _BREAKDOWN.search(question)["unit"])
    # 50余次, 5000多家; any figure when no unit is asked, or a bare number (a telephone number)
    figure = rf"{_NUMERAL}\s*(?:余|多)?(?:{units or _ANY_UNIT})|百分之" + ("" if units else r"|\d{3,}")
    held, asked, where = holder(question), anchor(question), local_places(question)
    per = _PER_UNIT.search(question)
    cue = DETAILS["具体数字"].search(question)
    stated = question[: cue.start()] if cue else ""
    span = _stated_span(stated, clause)
    return any(
        m[0] not in stated  # a figure the question states ("39家后备企业里有几家") is not its answer
        and span[0] <= m.start() < span[1]
        and (not part or any(w in _clause_before(clause, m.start()) for w in part))  # 其中小微企业**户
        and (not per or _PER_UNIT_GIVEN.search(_clause_before(clause, m.start())))  # 单户最高30万元
        and (not held or figure_of(held, question, clause[: m.start()]))
        and (not asked or anchor(clause[: m.start()], last=True) in ("", asked))
        and (not where or any(p in clause for p in where) or not _WIDER.search(clause[: m.start()]))
        for m in re.finditer(figure, clause)
    )


# A place a passage names: a city, a county or a province by jieba's place tag, not the scope of a figure
# (全市, 我省, 各县区).
_SCOPES = ("全", "我", "本", "各", "该", "省", "市", "县", "区")


def places(clause: str) -> list[str]:
    """The places ``clause`` names (石家庄, 内蒙古), leaving out scopes (全市, 各县区)."""
    return [
        word
        for word, flag in domain_tagger().cut(clause)
        if flag == "ns" and len(word) > 1 and not word.startswith(_SCOPES)
    ]


# Where something was done, by its place: "在围场开展", "在**、**等七个县区先行先试".
_DONE_IN = re.compile(r"在(?![全各本我该])[\u4e00-\u9fff*、]{2,12}?(?:开展|先行|设立|试点|建设|推广)")
# What follows a place that is part of a body's name (中原再担保, 石家庄银行): no place where it was done.
_BODY_AFTER = re.compile(r"再担保|银行|农商|集团|公司|证监|银保监|监管")


def cities_named(clause: str) -> bool:
    """Whether ``clause`` names a city, county or district where something was done: 围场县, *县, "在围场
    开展"; not a scope (全市, 各市) nor a place inside a body's name (中原再担保)."""
    if _DONE_IN.search(clause) or re.search(r"[*]+[市县区]", clause):
        return True
    at = 0
    for word, flag in domain_tagger().cut(clause):
        at += len(word)
        local = flag == "ns" and not _BODY_AFTER.match(clause, at)
        if len(word) > 1 and not word.startswith(_SCOPES) and (local or word.endswith(("市", "县", "区"))):
            return True
    return False


# A post a person holds, after their name or an anonymisation mark standing for it (**市长, *书记).
_POSTS = r"市长|书记|局长|行长|主任|组长|处长|部长|同志|教授|专家|老师"
_POST_WORDS = frozenset(_POSTS.split("|"))


def persons(clause: str) -> bool:
    """Whether ``clause`` names a person: a name before a post, anonymised ("尊敬的**市长") or tagged as a
    person's by jieba ("王明同志"; jieba's person tag alone is no proof: it tags 石家庄 so)."""
    if re.search(rf"[*]+(?:{_POSTS})|(?:{_POSTS})[*]+", clause):
        return True
    tagged = list(domain_tagger().cut(clause))
    return any(
        flag.startswith("nr") and len(word) > 1 and following in _POST_WORDS
        for (word, flag), (following, _) in pairwise(tagged)
    )


# A share of a total the question states: "278个问题里，融资类问题占多少", "265户里面小微企业有多少户".
_BREAKDOWN = re.compile(
    rf"{_NUMERAL}\s*(?:余|多)?(?P<unit>个|家|户|名|项|件|人|次|笔|亿元|万元)[^，。？?]{{0,16}}?"
    r"(?:里面|里头|里边|当中|之中|里|中)[，,]?(?P<rest>[^。？?]+)"
)


@lru_cache(maxsize=256)
def breakdown(question: str) -> tuple[str, ...]:
    """The words naming the part a question asks of a total it states (融资类 of "278个问题里，融资类问题占
    多少"): its nouns after the total that the total does not name; () when it asks no share of a total."""
    found = _BREAKDOWN.search(question)
    counted = re.search(r"(?:多少|几)(个|家|户|名|项|件|人|次|笔)", found["rest"]) if found else None
    if not found or (counted and counted[1] != found["unit"]):  # "943家企业里解决了多少个问题": not a part
        return ()
    total = question[: found.start("rest")]
    drop = stopwords() | generic_words() | cue_words()
    words = [
        w.strip('“”"')
        for w, _ in domain_tagger().cut(found["rest"])
        if len(w.strip('“”"')) > 1 and _CJK.search(w) and w not in total and w not in drop
    ]
    return tuple(w for w in words if not DETAILS["具体数字"].search(w))


_STATED = re.compile(rf"{_NUMERAL}\s*(?:余|多)?(?:{_ANY_UNIT})")


def _stated_span(stated: str, sentence: str) -> tuple[int, int]:
    """Where in ``sentence`` the figure asked about a figure the question states can be: from the clause
    holding it to the end of its part (the next semicolon): "下调或减收822户贷款利息；" holds no amount
    saved on those 822户, whatever the sentence says of others. The whole sentence when the question
    states no figure it holds."""
    for m in _STATED.finditer(stated):
        number = re.match(r"[\d.,，]+", m[0])
        written = number and re.search(
            re.escape(number[0]) + r"\s*" + re.escape(m[0][number.end() :].strip()), sentence
        )
        if written:  # "444.86亿元" is written "444.86 亿元" too
            at = written.start()
            start = max(sentence.rfind(mark, 0, at) for mark in "，,；;。") + 1
            ends = [e for e in (sentence.find(mark, at) for mark in "；;。") if e >= 0]
            return start, min(ends, default=len(sentence))
    return 0, len(sentence)


# A figure per household, per loan or per person ("单户最多能贷多少"): given by a figure so stated (单户,
# 户均, 最高, 不超过), not by a total ("贷款金额2375.99万元").
_PER_UNIT = re.compile(r"单户|每户|一户|户均|单笔|每笔|一笔|每人|人均|单人|每家|单家|每个人")
_PER_UNIT_GIVEN = re.compile(
    r"单户|每户|户均|单笔|每笔|笔均|每人|人均|单人|每家|单家|最高|最多|上限|不超过|以内|以下"
)


def _clause_before(sentence: str, at: int) -> str:
    """The clause of ``sentence`` (from the last comma or semicolon) up to position ``at``."""
    return re.split(r"[，,；;。]", sentence[:at])[-1]


_COMPARES = re.compile(
    r"同比|环比|较|比上|比去|高于|低于|超过|多于|少于|快于|慢于|位居|居全|排名|排第|增长|下降|增加|减少"
)
_LAST_YEAR = re.compile(r"去年|上年|上一年|往年|前一年")
_YEAR_ON_YEAR = re.compile(r"同比|较上年|比上年|上年同期|较去年|比去年|去年同期")


def compared(question: str, clause: str) -> bool:
    """Whether ``clause`` makes the comparison ``question`` asks for: with last year by 同比 or 比上年, with
    another thing ("全省平均水平") by naming it beside a comparing word, or any comparison when the question
    names nothing to compare to."""
    asked = DETAILS["对比情况"].search(question)
    target = (asked["target"] or "") if asked else ""
    if _LAST_YEAR.search(target):
        return bool(_YEAR_ON_YEAR.search(clause))
    key = re.sub(r"(?:的)?(?:平均)?(?:水平|情况|数据|同期)$", "", target).removesuffix("平均")
    if key and _CJK.search(key):
        return key in clause and bool(_COMPARES.search(clause.replace(key, "", 1)))
    return bool(_COMPARES.search(clause))


# A figure for the whole city or province is not one for the county a question names ("浚县有多少脱贫户
# 拿到了小额信贷？" is not answered by "全市新增脱贫人口小额信贷1309户").
_WIDER = re.compile(r"全市|全省|全国|全区")
_LOCAL = re.compile(r"[\u4e00-\u9fff]{1,6}(?:县|区)$")


@lru_cache(maxsize=256)
def local_places(question: str) -> tuple[str, ...]:
    """The counties and districts ``question`` names (浚县, 围场县 and 围场), by jieba's place tag or their
    ending."""
    found = []
    for word, flag in domain_tagger().cut(question):
        if (
            len(word) > 1
            and not word.startswith(("各", "全", "本", "我", "该", "每", "县", "区"))
            and (flag == "ns" and word.endswith(("县", "区")) or _LOCAL.match(word))
        ):
            found += [word, word[:-1]] if len(word) > 2 else [word]
    return tuple(found)


# The point in time a figure is taken at: "截至5月末", "年末", "上半年". A figure as of 5月末 is not the
# year-end figure a question asks for.
_ANCHOR = re.compile(r"(\d{1,2})月(?:末|底)|(年末|年底)|(上半年|下半年|[一二三四]季度|前三季度)")


def anchor(text: str, last: bool = False) -> str:
    """The point in time ``text`` names (its first, or its ``last``), as "5月末", "年末", "上半年"; "" if none."""
    found = list(_ANCHOR.finditer(text))
    if not found:
        return ""
    month, year_end, period = found[-1 if last else 0].groups()
    if month:
        return "年末" if int(month) == 12 else f"{int(month)}月末"
    return "年末" if year_end else period


# The words a question puts between the thing measured and its figure: "不良贷款率目前具体是多少".
_FILLER = frozenset(
    [
        "具体",
        "是",
        "为",
        "有",
        "目前",
        "现在",
        "还",
        "还有",
        "仍",
        "尚",
        "大概",
        "大约",
        "约",
        "一共",
        "共",
        "总共",
        "达到",
        "达",
        "的",
        "了",
    ]
)
# What a figure measures when it is a level, a share or an amount ("贷款余额", "不良贷款率", "利率").
_MEASURE_HEAD = re.compile(r"(?:余额|总额|金额|规模|占比|比重|增速|增幅|率)$")
# What a report puts between a measure and its figure when the figure is a change, not the level:
# "不良贷款率下降46.22%" says by how much the rate fell, not what it is.
_CHANGE = re.compile(
    r"下降|上升|增长|增加|减少|提高|降低|较年初|较上年|同比|环比|压降|多增|少增|回落|上涨|下跌|降幅|增幅|增速"
)
_SCOPE_WORDS = frozenset(
    ["全市", "全省", "全国", "全县", "全区", "我市", "本市", "我省", "本省", "市", "省", "县"]
)


@lru_cache(maxsize=256)
def holder(question: str) -> str:
    """The measure with its qualifier whose figure ``question`` asks for, when it names one: "不良贷款余额"
    in "全市不良贷款余额具体是多少亿元", "不良贷款率" in "不良贷款率具体是百分之几", or a measure asked
    with no qualifier but its scope ("贷款余额" in "全市贷款余额是多少"); "" otherwise. A figure of the
    measure without the qualifier (全市贷款余额), or of it with another (企业贷款余额 for 贷款余额), is a
    figure of something else (``figure_of``)."""
    cue = DETAILS["具体数字"].search(question)
    if not cue:
        return ""
    # "增长到多少" asks the level it reached, as "达到多少" does
    lead = re.sub(r"(?:增长|增加|上升|下降|提高|降低|降|升)?到了?$", "", question[: cue.start()])
    tagged = list(domain_tagger().cut(lead))
    while tagged and tagged[-1][0] in _FILLER:
        tagged.pop()
    if not tagged or not _MEASURE_HEAD.search(tagged[-1][0]):
        return ""
    (qualifier, flag), head = tagged[-2] if len(tagged) > 1 else ("", ""), tagged[-1][0]
    if qualifier in _SCOPE_WORDS or not re.match(r"^(n|vn|a|b|j)", flag) or not _CJK.search(qualifier):
        # a measure of its own with no qualifier ("全市贷款余额", "不良率"); a bare 余额 or 利率 says too little
        return head if len(head) > 2 else ""
    return qualifier + head


def figure_of(held: str, question: str, before: str) -> bool:
    """Whether the figure after ``before`` (the sentence up to it) can be a figure of ``held``: its clause
    names ``held`` (or it without 贷款: 不良率, or a glossary alias of its qualifier: 住房贷款余额 for
    房贷余额) with no change between them, or names neither another
    measure of its kind nor a change (a bare "达到12亿元"). A question asking for a change takes changes."""
    clause = re.split(r"[，,；;：:、。]", before)[-1]
    head = _MEASURE_HEAD.search(held)[0]
    qualifier = held[: -len(head)]
    aliases = [alias + head for alias in load_glossary().aliases(qualifier)]  # 房贷余额: 住房贷款余额
    longer = [held[: -len(head)] + "贷款" + head] if "贷款" not in held else []  # 不良率: 不良贷款率
    bare = held in _words_of(question)  # asked with no qualifier
    for name in dict.fromkeys([held, held.replace("贷款", ""), *longer, *aliases]):
        at = clause.rfind(name)
        if at >= 0 and not (bare and _qualified(clause[:at])):
            return not _CHANGE.search(clause[at + len(name) :]) or _asks_change(question)
    other = re.search(rf"[\u4e00-\u9fff]{{{max(1, 3 - len(head))},}}{head}", clause)
    return not other and (not _CHANGE.search(clause) or _asks_change(question))


def _asks_change(question: str) -> bool:
    """Whether ``question`` asks for a change ("较年初增长了多少"), in the clause asking for its figure; a
    change it states first ("下降了四成多以后，现在的不良率是多少") asks for the level."""
    cue = DETAILS["具体数字"].search(question)
    at = cue.start() if cue else len(question)
    start = max(question.rfind(mark, 0, at) for mark in "，,；;。") + 1
    ends = [e for e in (question.find(mark, at) for mark in "，,；;。？?") if e >= 0]
    return bool(_CHANGE.search(question[start : min(ends, default=len(question))]))


@lru_cache(maxsize=256)
def _words_of(question: str) -> frozenset[str]:
    """The words of ``question`` (the domain tagger's), once per question."""
    return frozenset(word for word, _ in domain_tagger().cut(question))


def _qualified(lead: str) -> bool:
    """Whether the text ``lead`` before a measure ends in a qualifier making it another measure (企业 of
    企业贷款余额), not a scope (全市贷款余额)."""
    tagged = list(domain_tagger().cut(lead))
    word, flag = tagged[-1] if tagged else ("", "")
    return bool(_CJK.search(word)) and bool(re.match(r"^(n|vn|a|b|j)", flag)) and word not in _SCOPE_WORDS


# An office or an institution is named by what it is (市工信局, 人民银行, 市发改委, *融资担保公司) or by
# what it does (停车管理部门), not by a kind in general (相关部门, 第三方机构, 银行保险机构).
ORGANISATIONS = frozenset(["部门", "机构", "单位"])
_ORGANISATION = re.compile(r"(?:局|委|厅|办|署|院|行|中心|公司|部门|机构|单位)$")
_ANY_KIND = frozenset(
    [
        "相关",
        "有关",
        "职能",
        "各",
        "各级",
        "主管",
        "金融",
        "第三方",
        "银行",
        "保险",
        "银行保险",
        "中介",
        "担保",
        "监管",
        "政府",
        "地方",
        "其他",
        "属地",
        "行业",
        "业务",
        "执法",
        "中小",
        "本",
        "该",
        "全",
        "支",
        "分",
        "总",
    ]
)


def _noun_runs(tagged: Sequence[tuple[str, str]]) -> list[str]:
    """The runs of nouns (and anonymisation marks) in a tagged clause, each as one phrase: 停车管理部门,
    **融资担保公司; a verb before the word naming an office is part of the run (调解 of 金融纠纷调解中心)."""

    def nominal(word: str, flag: str) -> bool:
        return bool(word) and (bool(_NOUN.match(flag)) or flag in ("ns", "nt") or set(word) == {"*"})

    padded = [*tagged, ("", "x")]
    runs, run = [], ""
    for at, (word, flag) in enumerate(padded[:-1]):
        following = padded[at + 1]
        bare_head = _ORGANISATION.fullmatch(following[0]) is not None  # 中心, 部门: no name of its own
        if nominal(word, flag) or (run and flag == "v" and nominal(*following) and bare_head):
            run += word
        else:
            runs, run = runs + [run] * bool(run), ""
    return runs + [run] * bool(run)


def _organisation(name: str) -> bool:
    """Whether the noun phrase ``name`` names one office or institution (see ``ORGANISATIONS``)."""
    found = _ORGANISATION.search(name)
    return bool(found) and len(name) > 2 and name[: found.start()].strip("*") not in _ANY_KIND


# A kind named by words of other endings: a school is a 中学, a 小学 or a 学院 by name.
_KIND_NAMES = {"学校": ("学校", "中学", "小学", "大学", "学院", "幼儿园")}


def names_of(kind: str, clause: str, question: str) -> list[str]:
    """The names of a ``kind`` (银行) in ``clause``: a word ending in it, or the kind after a noun or an
    anonymised name (市农商银行 gives 农商银行, *银行 stays *银行), leaving out kinds in general
    (``GENERIC_NAMES``: 中小银行) and names the question gives itself. An office or institution
    (``ORGANISATIONS``) is named by a noun ending as one does (``_ORGANISATION``: 市人行, *银保监局)."""
    tagged = list(domain_tagger().cut(clause))
    if kind in ORGANISATIONS:
        return [n for n in _noun_runs(tagged) if _organisation(n) and n.strip("*") not in question]
    ends = _KIND_NAMES.get(kind, (kind,))
    found = []
    for at, (word, _) in enumerate(tagged):
        if not word.endswith(ends):
            continue
        before, flag = tagged[at - 1] if at else ("", "")
        # a one-character noun names when it is a place (北 of 沪深北交易所) or follows another noun, not
        # alone ("报交易所审核": 报 is a report to the exchange)
        named = len(before) > 1 or flag in ("ns", "j") or (at > 1 and bool(_NOUN.match(tagged[at - 2][1])))
        # a school by its number (第一中学)
        noun = _NOUN.match(flag) or (kind in _KIND_NAMES and flag == "m" and len(before) > 1)
        if word in ends and ((noun and named) or before.endswith("*")):
            word = before[-1] + word if before.endswith("*") else before + word
        if word not in ends and word not in GENERIC_NAMES and word not in question:
            found.append(word)
    return found


def asked_detail(question: str) -> str:
    """The kind of detail ``question`` asks for ("具体日期", "名次", "具体数字"), or "" when it asks for none."""
    return next(
        (kind for kind, cue in DETAILS.items() if cue.search(question) and not _how_to(kind, question)), ""
    )


_HOW = re.compile(r"如何|怎么|怎样")


def _how_to(kind: str, question: str) -> bool:
    """A question asking how to look a date up ("如何查询车辆年检日期") asks for a way, not a date."""
    return kind == "具体日期" and DETAILS[kind].findall(question) == ["日期"] and bool(_HOW.search(question))


# What lists a group's members beside its name: after it, an aside, a colon or 即/包括/分别 ("“双送”即送政
# 策、送服务", "三个一批（…）"); in its clause, a list ("A、B、C等五大产业集群", "建立A、B“两项机制”"), not
# one it is itself an item of ("推介“三个一批”、“双20”、灾后重建等项目"); or items after it (一是 …).
_LISTS_AFTER = re.compile(r"^[”》」’]?(?:[（(：:]|[，,]?即|包括|分别|是指|指的是|主要有|主要是|涵盖|含)")
_ITEM_OPENS = re.compile(r"^\s*(?:[一二三四五六七八九十]是|首先|第一|（一）|\(1\)|1[.、．]|①)")
_COUNT = "两二三四五六七八九十"
_CHINESE_DIGITS = {c: n for n, c in enumerate("零一二三四五六七八九十")} | {"两": 2}


def group_named(word: str, question: str) -> bool:
    """Whether ``word`` names a group whose members ``question`` asks for by its name: quoted (“双送双问”),
    counted in itself (三位一体, 1+N) or by the question (五大产业集群, 那2家融资担保公司)."""
    return (
        _quoted_in(word, question)
        or _counts_itself(word)
        or bool(
            re.search(
                rf"[\d{_COUNT}]+(?:个|大|项|类|种|家|方|位|批|条)?[\u4e00-\u9fff]{{0,4}}{re.escape(word)}",
                question,
            )
        )
    )


def _quoted_in(word: str, question: str) -> bool:
    """Whether ``question`` quotes ``word`` as a name (“双送双问”)."""
    return word in re.findall(r"[“「]([^”」]{2,20})[”」]", question)


def _counts_itself(word: str) -> bool:
    """Whether the name ``word`` holds its own count (三位一体, 1+N, 双送双问)."""
    return bool(re.search(rf"[\d{_COUNT}双]", word))


def _asked_count(question: str) -> int:
    """How many members ``question`` asks for ("哪两个平台": 2), 0 when it does not say."""
    found = re.search(rf"哪([{_COUNT}]+|\d+)", question)
    if not found:
        return 0
    if found[1].isdigit():
        return int(found[1])
    digits = [_CHINESE_DIGITS[c] for c in found[1]]
    return digits[0] if len(digits) == 1 else (digits[0] * 10 if digits[-1] == 10 else 10 + digits[-1])


def members_listed(word: str, question: str, texts: Sequence[str], words: Sequence[str] = ()) -> bool:
    """Whether a passage of ``texts`` lists the members of the group ``word`` names: beside it (see
    ``_LISTS_AFTER``), in its clause, in the items that follow it, or as many items as ``question`` asks
    for anywhere in its sentence."""
    count = _asked_count(question)
    # a quoted name counting its members itself (“三位一体”) is spelled out beside the name, not by any list
    quoted = _quoted_in(word, question) and _counts_itself(word)
    item = re.compile(rf"{re.escape(word)}[”》」’]?、|、[“《「‘]?{re.escape(word)}")  # a list it is in
    for text in texts:
        parts = [m[0] for m in sentences(text) if m[0].strip()]
        for at, part in enumerate(parts):
            clauses = re.split(r"[，,；;。]", part)
            # a sentence of the question's; of the group itself when its quoted name counts its members
            # (two items are any "A、B" of a sentence: of the group's own sentence too)
            about = (
                word in part if quoted or count < 3 else not words or any(w in part for w in [word, *words])
            )
            if quoted and word in part:  # beside the name: its clause and the next, not a list before it
                named = next(i for i, c in enumerate(clauses) if word in c)
                clauses = clauses[named : named + 2]
            if count and about and any(_items(c) == count and not item.search(c) for c in clauses):
                return True
            start = part.find(word)
            if start < 0:
                continue
            following = parts[at + 1] if at + 1 < len(parts) else ""
            if part.rstrip().endswith(("：", ":")) or _ITEM_OPENS.match(following):
                return True
            while start >= 0:
                end = start + len(word)
                before = re.split(r"[，,；;。]", part[:start])[-1]
                after = re.split(r"[，,；;。]", part[end:])[0]
                # an item of a list ("推介“三个一批”、“双20”、灾后重建") is not a group with its members
                an_item = re.match(r"^[”》」’]?、", after) or re.search(r"、[“《「‘]?$", before)
                if _LISTS_AFTER.match(part[end:]) or ("、" in before and not an_item):
                    return True
                start = part.find(word, start + 1)
        if spelled_apart(word, text):
            return True
    return False


def _items(clause: str) -> int:
    """How many items ``clause`` lists: "A、B、C" three, "A台账和B台账" two, else one."""
    if "、" in clause:
        return clause.count("、") + 1
    return 2 if re.search(r"[和及与]", clause) else 1


def spelled_apart(word: str, text: str) -> bool:
    """Whether ``text`` names the members of the group ``word`` as quoted terms of their own, each holding a
    character of its name (“红黄蓝” as “蓝牌”, “黄牌”, “红牌”); counts (三, 双) are no such character."""
    own = set(_CJK.findall(word)) - set(_COUNT + "一双百千万")
    terms = {t for t in re.findall(r"[“「]([^”」]{1,12})[”」]", text) if t != word and own & set(t)}
    return len(terms) >= 2


@dataclass(frozen=True)
class MissingDetail:
    """A detail a question asks for (``kind``, as the refusal names it: 具体日期) that the passages'
    sentences about its ``subject`` word do not give."""

    subject: str
    kind: str

    @property
    def label(self) -> str:
        """How a refusal's detail names it: "首贷续贷：具体日期", or the kind alone when no passage names the
        subject (personal advice on a thing the reports never mention)."""
        return f"{self.subject}：{self.kind}" if self.subject else self.kind

    @property
    def explanation(self) -> str:
        """The sentence a refusal gives for it."""
        if self.subject:
            return f"知识库提到了“{self.subject}”，但没有给出{self.kind}。"
        return f"知识库不提供{self.kind}。"


def sentences_about(words: Sequence[str], texts: Iterable[str], every: bool = False) -> tuple[str, list[str]]:
    """The first of ``words`` (most specific first) that a sentence of ``texts`` uses as a word, and the
    sentences that do; a headline sentence (``HEADLINE_CHARS`` or shorter: "二是开展定期现场检查。")
    brings the sentence after it, which carries its figures. ``every``: the sentences using any of
    ``words`` (the first word found is still returned)."""
    split = [[m[0] for m in sentences(text) if m[0].strip()] for text in texts]
    first, found = "", []
    for word in words:
        near = []
        for parts in split:
            for at, part in enumerate(parts):
                if covers(part, word):
                    near += parts[at : at + (2 if len(part) <= HEADLINE_CHARS else 1)]
        if near and not every:
            return word, near
        first, found = first or (word if near else ""), found + near
    return first, found


# Kinds given by a passage spelling out a named group beside its name (``members_listed``).
_SPELLED_OUT = frozenset(["具体名单", "具体含义"])


def unmet_detail(
    question: str, texts: Sequence[str], words: Sequence[str], group: Sequence[str] = ()
) -> MissingDetail | None:
    """The detail ``question`` asks for when the passages ``texts`` (best first) do not give it, or None.

    ``words`` are the question's subject words, most specific first. The detail must be in a sentence
    about the most specific of them the passages hold (``sentences_about``), or in a sentence of the best
    passage about any of them; when no sentence of the best passage names one, anywhere in it (a
    paraphrase names its subject in other words: 刚脱贫的农户 for 脱贫人口). A figure elsewhere in the best
    passage is a figure of something else ("个人汽车贷款余额" does not say how much 消费券 were issued).
    When no sentence holds a subject word (a paraphrase throughout), any sentence of the passages may give
    it, and the question is refused only when none does ("2023年定的贷款增长目标是多少" over the 2023
    paragraph, which sets no figure). Nothing is judged when the question asks for no detail or has no
    subject words. The members of a named group (五大产业集群), when no passage of ``texts`` names it, are
    looked for in ``group``: the knowledge base's passages naming it (``group_passages``).
    """
    kind = asked_detail(question)
    word, near = sentences_about(words, texts) if kind else ("", [])
    if kind == "个人建议":  # given nowhere, whichever passages came back
        return MissingDetail(_named(word, words, near) if near else "", kind)
    if not near:
        # no sentence names a subject word (a paraphrase): a passage must give the detail somewhere
        if kind in _SPELLED_OUT and group:
            return unmet_detail(question, group, words)
        if not kind or not words or kind in _SPELLED_OUT:
            return None
        if _gives(kind, question, [m[0] for text in texts for m in sentences(text)]):
            return None
        return MissingDetail(holder(question) if kind == "具体数字" else "", kind)
    if kind in _SPELLED_OUT:
        listed = not group_named(word, question) or members_listed(word, question, texts, words)
        return None if listed else MissingDetail(_named(word, words, near), kind)
    # when a name (天海集团) did something is told in the sentences naming it, not by another's date
    # and a figure the question states (444.86亿元) anchors it to the sentences giving that figure
    named = (kind == "具体日期" and general_idf(word) >= NAME_IDF) or word.isdigit()
    own = [] if named else sentences_about(words, texts[:1], every=True)[1] or list(texts[:1])
    if _gives(kind, question, [*near, *own]):
        return None
    return MissingDetail((kind == "具体数字" and holder(question)) or _named(word, words, near), kind)


GROUP_PASSAGES = 10


def group_passages(question: str, words: Sequence[str], contexts: Contexts) -> tuple[str, ...]:
    """The knowledge base's passages (``contexts``, at most ``GROUP_PASSAGES``) naming the group whose
    members or meaning ``question`` asks ("五大产业集群分别是哪五个": those with 集群); empty when it asks
    for neither or names no group among its subject ``words``."""
    if asked_detail(question) not in _SPELLED_OUT:
        return ()
    word = next((w for w in words if group_named(w, question)), "")
    return tuple(p for p in contexts(word) if covers(p, word))[:GROUP_PASSAGES] if word else ()


def _gives(kind: str, question: str, parts: Iterable[str]) -> bool:
    return any(detail_given(kind, question, part) for part in parts)


# Kinds a single passage cannot be checked for alone: members are judged over the passages together, and
# advice is never given.
_NOT_BY_PASSAGE = frozenset(["具体名单", "具体含义", "个人建议"])


def gives_detail(question: str, text: str, words: Sequence[str]) -> bool | None:
    """Whether the passage ``text`` gives the detail ``question`` asks for in its sentences about the
    subject ``words``; None when it asks for none a single passage can be checked for."""
    kind = asked_detail(question)
    if not kind or kind in _NOT_BY_PASSAGE or not words:
        return None
    return _gives(kind, question, sentences_about(words, [text])[1])


def hidden_figures(question: str, text: str, words: Sequence[str]) -> list[str]:
    """The anonymised figures (*名, **次, *.*亿元) that are all ``text`` gives for the figure ``question``
    asks: in each sentence holding one of its subject ``words``, the first figure in the asked unit after
    the word. Empty when the question asks for no figure or any of those figures is legible."""
    if asked_detail(question) != "具体数字":
        return []
    figure = re.compile(rf"{_NUMERAL}\s*(?:余|多)?(?:{asked_units(question) or _ANY_UNIT})[元次]?")  # ***万元
    found = []
    for part in (m[0] for m in sentences(text)):
        for word in words:
            at = part.find(word)
            first = figure.search(part, at) if at >= 0 and covers(part, word) else None
            if first:
                found.append(first[0])
                break
    return list(dict.fromkeys(found)) if found and all("*" in f for f in found) else []


def _named(word: str, words: Sequence[str], near: Sequence[str]) -> str:
    """How a refusal names the subject found in the sentences ``near``: ``word``, or when it is a number
    ("5月24日" found by 24) the next subject word those sentences use (金融机构)."""
    if not word.isdigit():
        return word
    return next((w for w in words if not w.isdigit() and any(covers(p, w) for p in near)), word)


@dataclass(frozen=True)
class Gaps:
    """What the knowledge base lacks for one question, found once and passed to the answer path:
    ``topics`` are the terms of art it names that no document mentions (``Retriever.uncovered_topics``),
    ``subject`` its subject word no document uses (``uncovered_subject``), ``words`` its subject words,
    most specific first (``unmet_detail`` looks for the sentences about them), ``everyday`` how near it is
    to everyday life (``Retriever.everyday``; 0 when not measured), ``group`` the passages naming the
    group whose members it asks (``group_passages``)."""

    topics: tuple[str, ...] = ()
    subject: Subject | None = None
    words: tuple[str, ...] = ()
    everyday: float = 0.0
    group: tuple[str, ...] = ()


NO_GAPS = Gaps()  # a question the knowledge base lacks nothing for
