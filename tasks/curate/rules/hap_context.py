"""What the HAP word list and phrase patterns miss, read from a sentence's words rather than fixed phrases:

- obfuscated words: letters written as digits or symbols ("sh!t", "f@ggot", "k1ll urs3lf"), letters spaced out
  ("f u c k"), letters masked ("n****r"): `plain_forms` gives the sentence as the word list and patterns should
  see it;
- hate against a group: a group of people named by identity and, within a few words, something said of them
  that dehumanises, degrades, excludes or threatens ("blacks are basically animals", "Disabled people are a drain
  on society", "trans ppl are just predators", "keep them out of every school") — unless the sentence reports,
  studies or disputes it ("was sentenced for", "the myth that", "a study of");
- harassment of the reader: death wishes, doxxing and stalking ("I already have your work address", "followed
  you home"), sexual harassment ("send me your nudes").

Each is a set lookup on a sentence's words first; the regular expressions run only on the sentences that hold the
words they need. Checked on labelled sets (benchmarks/hap_eval.py) and for matches on the demo and benchmark
corpora, where a match on text that is not abusive is a false positive in a training corpus.
"""
from __future__ import annotations

import re
from bisect import bisect_left
from functools import lru_cache
from itertools import islice

_WORD = re.compile(r"[a-z]+")

# --- obfuscation -----------------------------------------------------------------------------------------------

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i",
                       "|": "l"})
_SPACED = re.compile(r"\b[a-z](?:[ .\-_][a-z]\b){2,}")
THREAT_WORDS = frozenset("kill die yourself urself self kys hate rape murder shoot stab hang".split())
# ASCII text read as classes: a letter "a", a character that can stand for one "1", anything else " " (a token with
# "a1" or "1a" may be obfuscated; " a a a " is a run of single letters): a C-speed test before any pattern runs
_CLASSES = bytes(ord("a") if chr(c).isalpha() and c < 128 else ord("1") if chr(c) in "0134579@$!|*" else ord(" ")
                 for c in range(256))


def _unmask(token: str, known: frozenset[str]) -> str:
    """A word with letters masked by `*` (n****r, f*ck) read as the one listed word it can be: same length, the
    same letters where they show, the first one shown."""
    if not token[:1].isalpha() or token.count("*") > len(token) - 2:
        return token
    found = [w for w in _by_shape(known).get((len(token), token[0]), ()) if
             all(c == "*" or c == d for c, d in zip(token, w))]
    return found[0] if len(found) == 1 else token


@lru_cache(maxsize=8)
def _by_shape(known: frozenset[str]) -> dict[tuple[int, str], tuple[str, ...]]:
    shapes: dict[tuple[int, str], list[str]] = {}
    for w in known:
        if w.isalpha():
            shapes.setdefault((len(w), w[0]), []).append(w)
    return {k: tuple(sorted(v)) for k, v in shapes.items()}


def _mixed_runs(x: bytes) -> list[tuple[int, int]]:
    """The spans of the runs of a class string (`_CLASSES`) that hold a letter next to a stand-in; each found by
    bytes.find from the end of the last one (linear)."""
    spans: list[tuple[int, int]] = []
    n, i = len(x), 0
    j1, j2 = x.find(b"a1"), x.find(b"1a")
    while j1 >= 0 or j2 >= 0:
        j = j1 if j2 < 0 or 0 <= j1 < j2 else j2
        a, b = x.rfind(b" ", 0, j) + 1, x.find(b" ", j)
        b = n if b < 0 else b
        spans.append((a, b))
        i = b
        if 0 <= j1 < i:
            j1 = x.find(b"a1", i)
        if 0 <= j2 < i:
            j2 = x.find(b"1a", i)
    return spans


@lru_cache(maxsize=8)
def _rewrites(known: frozenset[str]) -> tuple[frozenset[str], int]:
    """The words an obfuscated word may be read as, and the longest span that can become one."""
    relevant = known | THREAT_WORDS
    return relevant, max(map(len, relevant)) + 2


def plain_forms(line: str, known: frozenset[str], may_be_spaced: bool = True) -> str | None:
    """The lower-cased text with its obfuscated words written plainly, or None when it holds none: inside a word,
    digits and symbols read as the letters they stand for ("sh!t", "k1ll", "f@ggot"); masked words are matched
    against `known` (the listed words, "n****r"); runs of single letters spaced out are joined ("f u c k"). Only a
    word that becomes a listed word or a threat word is rewritten (a version such as "md5" stays as it is). Linear
    in the text: candidate words are found on its character classes (bytes.translate), without backtracking.
    `may_be_spaced=False`: the text holds no three words of one letter in a row (`hap_words.read_words`), so no letters
    spaced out are looked for."""
    # one byte per character (a non-ASCII one reads as "?", a separator), classed: a C-speed test and the spans
    x = line.encode("ascii", "replace").translate(_CLASSES)
    spans = _mixed_runs(x)
    spaced = may_be_spaced and (b" a a a " in x or x.startswith(b"a a a ") or x.endswith(b" a a a"))
    if not (spans or spaced):
        return None
    relevant, longest = _rewrites(known)
    pieces, at = [], 0
    for a, b in spans:
        if b - a > longest or b - a < 3:
            continue
        t = line[a:b].rstrip("!|")
        new = _unmask(t, known) if "*" in t else t.translate(_LEET)
        if new != t and new in relevant:
            pieces += [line[at:a], new]
            at = a + len(t)
    out = "".join(pieces) + line[at:] if pieces else line
    if spaced and _SPACED.search(out):
        out = _SPACED.sub(lambda m: j if (j := re.sub(r"[ .\-_]", "", m.group())) in relevant else m.group(), out)
    return out if out != line else None


# --- hate against a group --------------------------------------------------------------------------------------

def _forms(words: str) -> frozenset[str]:
    """Words and their plural/singular forms."""
    out = set()
    for w in words.split():
        out |= {w, w + "s"} if not w.endswith("s") else {w, w[:-1]}
    return frozenset(out)


# nouns that name a group by identity on their own: plurals (a singular such as "Mexican" is mostly an adjective:
# "Mexican food"), and a few words that are only ever nouns for people
GROUP_NOUNS = frozenset(
    "jews muslims moslems islamists christians catholics hindus sikhs atheists blacks whites negroes asians "
    "mexicans arabs africans pakistanis pakis latinos latinas hispanics immigrants migrants refugees foreigners "
    "illegals gypsies roma gays lesbians homosexuals queers transgenders trannies feminists retards autists "
    "jew negro paki tranny".split())
# adjectives that name a group only before a word for people ("black people", "gay coworker", "female gamers")
GROUP_ADJECTIVES = frozenset(
    "jewish muslim islamic black white asian chinese japanese korean indian arab african mexican latino hispanic "
    "gay lesbian trans transgender queer female disabled autistic retarded immigrant migrant foreign roma gypsy "
    "catholic christian hindu sikh".split())
PEOPLE = _forms(
    "people ppl folk folks men women man woman guy guys kid kids boy boys girl girls person persons family families "
    "driver drivers gamer gamers coworker co-worker colleague neighbour neighbor friend friends student students "
    "children child race races community communities population")
_WOMEN = frozenset({"women", "females"})  # a group on their own (the singular is mostly one person)
# what is said of a group: dehumanising, degrading, excluding, threatening, or a hate trope
GROUP_NEGATIVE = _forms(
    "animal vermin parasite rat cockroach roach locust insect lice leech scum subhuman sub-human savage filth filthy "
    "zoo colonise colonize colonising colonizing "
    "ape monkey pig dog trash garbage inferior primitive backward uncivilised uncivilized barbaric barbarian "
    "criminal thief rapist terrorist invader infestation plague disease diseased cancer virus drain burden freak "
    "pervert predator pedophile paedophile groomer abomination degenerate stupid dumb lazy dirty violent "
    "exterminate extermination deport deported expel eradicate gas gassed lynch lynched hang hanged kill "
    "breed breeding ban banned banning kitchen sandwich sandwiches greedy thieving stink stinks") | frozenset(
    "thieves leeches roaches cockroaches viruses lice".split())  # plurals not made by an s
_NEGATIVE_PHRASES = re.compile(
    r"\b(?:not|aren'?t|isn'?t|less\s+than)\s+(?:real\s+|even\s+|fully\s+)?(?:human|humans|human\s+beings)\b"
    r"|\bkeep\s+(?:them|those|these)\s+(?:out|off|away)\b|\bout\s+of\s+the\s+gene\s+pool\b|\bget\s+rid\s+of\b"
    r"|\bwipe\s+(?:them\s+)?out\b"
    r"|\bshould(?:n'?t|\s+not)\s+be\s+allowed\b|\bsend\s+(?:them|those|these)\s+(?:all\s+)?back\b"
    r"|\bdon'?t\s+belong\b|\bnot\s+welcome\b|\blower\s+iqs?\b|\bcontrol\s+the\s+(?:banks|media|world|money)\b"
    r"|\bshould\s+be\s+(?:locked|shut)\s+(?:up|away)\b|\bmentally\s+ill\b|\btoo\s+(?:emotional|stupid|dumb)\s+to\b")
"""Phrases that say something degrading or excluding of a group named in the same sentence (each one a claim on its
own: "go back to", "not allowed to", "by nature" or "in their blood" also open ordinary sentences about people)."""
# a sentence that reports, studies or disputes what it says of a group is not hate speech
REPORTING = _forms(
    "sentenced convicted charged accused arrested court trial judge jury prosecutor police report reported reporting "
    "study studies survey research researcher according said says claim claimed claims myth myths stereotype "
    "stereotypes debunk debunked false falsely misinformation disinformation condemn condemned condemns denounce "
    "denounced discrimination prejudice bigotry racism antisemitism islamophobia homophobia "
    "transphobia xenophobia misogyny propaganda trope tropes rhetoric slur slurs victim victims survivor "
    "survivors rights equality historian historians history museum documentary article journalist journalists "
    "campaign campaigners activist activists policy guideline guidelines moderation moderator moderators "
    "example examples term terms word words phrase called calling quote quoted holocaust genocide nazi nazis ww2 "
    "wwii war memorial")
# --- reported speech --------------------------------------------------------------------------------------------

_QUOTED = re.compile(r'"[^"\n]{1,300}"|“[^”“\n]{1,300}”|‘[^’‘\n]{1,300}’|«[^»«\n]{1,300}»')
"""A quoted span within a line (its opening mark excluded inside: a run of them costs a scan each, not 300)."""
def _single_quoted(low: str) -> list[tuple[int, int]]:
    """Quotations in ASCII single quotes: opened after a space, a parenthesis or a line start (so that the
    apostrophes of "the boys' coach ... the girls' coach" make none), closed by the next one on the line, 1 to 300
    characters inside, before no letter, digit or apostrophe. Found by str.find (a look-behind makes a regular
    expression 6x slower); `MAX_QUOTES` openings tried of each kind at most."""
    found, tries = [], 0
    for opener in (" '", "\n'", "('"):
        i = low.find(opener)
        while i >= 0 and tries < MAX_QUOTES:
            tries += 1
            a = i + 1
            b = low.find("'", a + 1, a + 302)
            if b > a + 1 and low.find("\n", a, b) < 0 and not (b + 1 < len(low) and (low[b + 1].isalnum()
                                                                                  or low[b + 1] in "_'")):
                found.append((a, b + 1))
            i = low.find(opener, a)
    if low.startswith("'"):
        b = low.find("'", 1, 302)
        if b > 1 and low.find("\n", 0, b) < 0 and not (b + 1 < len(low) and (low[b + 1].isalnum()
                                                                            or low[b + 1] in "_'")):
            found.append((0, b + 1))
    return found


_NEAR = 120
"""How far before and after a quotation the words that report it are looked for (within its line)."""
_ADDRESSED = 25
"""A word for the reader this close to a quotation: it is said to them."""
MAX_QUOTES = 2000
"""Quotations read per text, at most (as sentences are: a text of a million quotation marks stays cheap)."""
REPORTED_SPEECH = REPORTING | frozenset(
    "wrote written told messaged messages received shouted yelled screamed described testimony testified witness "
    "witnesses heard texted tweeted voicemail voicemails email emails labelled labeled wording slogan slogans chant "
    "chants chanted graffiti banner placard lyrics headline headlines tweet tweets quotes quoting comment comments "
    "call calls saying sign signs caption meme memes joke jokes insult insults".split())
"""Words that say a quotation next to them is reported, cited or studied, not said to anyone."""


def unquote_reported(low: str) -> str:
    """`low` (lower-cased) with the quotations that the text reports taken out: a quoted span with, within `_NEAR`
    characters of it on its line and outside any quotation, a word of reported speech, and no word for the reader
    within `_ADDRESSED` ("the witness said her manager called her a "stupid bitch"", "the guidelines give "go back
    to where you came from" as an example", "the slur 'wetback'"; not "i called you a "worthless whore""). Its
    quotation leaves empty quotes; the rest of the text is unchanged. Run before the text is cut into sentences,
    so that a quotation holding several stays one. Linear: a regular-expression scan, str.find scans, then a
    window read per quotation, `MAX_QUOTES` of them at most."""
    spans = list(islice((m.span() for m in _QUOTED.finditer(low)), MAX_QUOTES))
    if "'" in low:
        spans = sorted(spans + _single_quoted(low))
    if not spans:
        return low
    pieces, at = [], 0  # the text with every quotation's inside blanked: what is said around them
    for a, b in spans:
        if a >= at:
            pieces += [low[at:a + 1], " " * (b - a - 2), low[b - 1]]
            at = b
    around = "".join(pieces) + low[at:]
    out, at = [], 0
    for a, b in spans:
        if a < at:
            continue  # inside a quotation already taken out
        start = max(around.rfind("\n", max(0, a - _NEAR), a) + 1, a - _NEAR)
        end = around.find("\n", b, b + _NEAR)
        end = min(b + _NEAR, len(low)) if end < 0 else end
        if REPORTED_SPEECH.isdisjoint(_WORD.findall(around[start:a] + " " + around[b:end])):
            continue
        if not YOU.isdisjoint(_WORD.findall(around[max(start, a - _ADDRESSED):a] + " " + around[b:b + _ADDRESSED])):
            continue  # said to the reader ("i called you a "...""), not reported
        out += [low[at:a + 1], low[b - 1]]
        at = b
    if not out:
        return low
    out.append(low[at:])
    return "".join(out)


_WINDOW = 12  # words between a group and what is said of it
_SHORT = 16  # words of a sentence read together with the next one (a comment's "Roma family ... Thieves, all of them")


def group_hate(words: list[str], line: str) -> bool:
    """A group named by identity and, within `_WINDOW` words, a dehumanising, degrading or excluding word or
    phrase, in a sentence that does not report or dispute it."""
    ws = set(words)
    if not ws.isdisjoint(REPORTING):
        return False
    at = [i for i, w in enumerate(words) if w in GROUP_NOUNS or w in _WOMEN or (
        w in GROUP_ADJECTIVES and i + 1 < len(words) and (words[i + 1] in PEOPLE or words[i + 1] in GROUP_NOUNS))]
    if not at:
        return False
    bad = [j for j, w in enumerate(words) if w in GROUP_NEGATIVE]
    for j in bad:  # the group mention nearest each degrading word (linear: both lists are in order)
        k = bisect_left(at, j)
        if (k < len(at) and at[k] - j <= _WINDOW) or (k and j - at[k - 1] <= _WINDOW):
            return True
    return bool(_NEGATIVE_PHRASES.search(line))


# --- harassment of the reader ----------------------------------------------------------------------------------

YOU = frozenset("you u ya ye youre you're ur your yours yourself urself thou thee".split())
_NOT = r"(?!(?:not|don'?t|doesn'?t|won'?t|never|didn'?t)\b)"
_HARASSMENT = re.compile(
    # wishes of death or harm
    rf"\bhope\s+(?:you|u|your\s+\w+(?:\s+\w+)?)\s+(?:{_NOT}[\w']+\s+){{0,4}}(?:die|dies|rot|suffer|drown|choke|"
    r"burns?\s+(?:down|in\s+hell)|get\s+(?:cancer|shot|raped|killed|run\s+over|aids))\b"
    r"|\b(?:should|shoulda)\s+(?:have|of|'?ve)\s+been\s+(?:aborted|drowned|strangled)\b"
    r"|\b(?:no\s*one|nobody|noone)\s+(?:\w+\s+){0,2}(?:likes|loves|would\s+miss|will\s+miss|cares\s+about)\s+"
    r"(?:you|u)\b"
    r"|\bworld\s+(?:would\s+be|is)\s+(?:a\s+)?better\s+(?:place\s+)?without\s+(?:you|u|people\s+like\s+you)\b"
    r"|\bdrink\s+bleach\b|\bkill\s+(?:yo)?ur\s*self\b|\bkys\b|\bneck\s+yourself\b|\brope\s+yourself\b"
    r"|\bdo\s+(?:us|everyone|the\s+world)\s+(?:all\s+)?a\s+favou?r\s+and\s+(?:die|disappear|kill)\b"
    # doxxing, stalking, intimidation
    r"|\b(?:got|found|leak|leaking|leaked|publish|publishing|posting)\s+(?:\w+\s+){0,2}your\s+(?:home\s+|work\s+|"
    r"real\s+|phone\s+)?(?:address|number|name|ip|kids'?|children'?s?|school|workplace|family)\b"
    r"|\byour\s+(?:home|work|office)\s+address\b|\byour\s+kids'?\s+school\b"
    r"|\bfollowed\s+you\s+(?:home|to)\b|\b(?:wait|waiting)\s+(?:outside|for\s+you\s+outside)\s+your\b"
    r"|\bwatch\s+your\s+back\b|\bor\s+(?:i|we)\s+(?:send|post|leak|show\s+up|tell)\b"
    r"|\bshame\s+if\s+(?:something|anything)\s+(?:happened|were\s+to\s+happen)\b"
    r"|\bshame\s+if\s+your\s+(?:boss|wife|husband|family|parents|employer|kids)\b"
    r"|\b(?:i|we)(?:'ll|\s+will|'m\s+going\s+to|\s+am\s+going\s+to|\s+are\s+going\s+to|\s+gonna)\s+(?:\w+\s+){0,6}"
    r"make\s+you\s+regret\b"
    # sexual harassment
    r"|\bsend\s+(?:me\s+)?(?:your\s+|more\s+)?nudes\b|\bnice\s+(?:tits|boobs|ass|rack)\b"
    r"|\bbra\s+size\b|\bsit\s+on\s+my\s+face\b")
HARASSMENT_WORDS = frozenset(
    "hope aborted drowned strangled nobody noone likes loves miss cares without bleach kill kys neck rope favour "
    "favor address ip school workplace followed outside back send post posting publishing leak leaked leaking "
    "number show tell shame regret nudes tits boobs ass rack bra face".split())
"""The words `_HARASSMENT` needs, one of them at least per alternative: its sentences are the only ones it reads."""


def harassment(words: list[str], line: str) -> bool:
    """Death wishes, doxxing and stalking, sexual harassment aimed at the reader."""
    ws = set(words)
    return not ws.isdisjoint(YOU) and not ws.isdisjoint(HARASSMENT_WORDS) and bool(_HARASSMENT.search(line))


GROUP_WORDS = GROUP_NOUNS | GROUP_ADJECTIVES | _WOMEN
CONTEXT_WORDS = GROUP_WORDS | PEOPLE | YOU | HARASSMENT_WORDS
"""The words of a document `context_hit` reads (it intersects the document's words with these sets only)."""
def _spans_with(low: str, words) -> list[tuple[int, int]]:
    """The (start, end) of the lines of `low` that contain one of `words` (as substrings), each once, in order."""
    found = {}
    for w in words:
        i = low.find(w)
        while i >= 0:
            start = low.rfind("\n", 0, i) + 1
            end = low.find("\n", i)
            end = len(low) if end < 0 else end
            found[start] = end
            i = low.find(w, end)
    return sorted(found.items())


def context_hit(low: str, words: set[str]) -> bool:
    """Whether a sentence of `low` (lower-cased, one sentence a line) holds hate against a group or harassment of
    the reader; `words` are the document's [a-z]+ words (the sentences are read only when they can match). A short
    sentence naming a group is also read with the short one after it ("a Roma family at the station ... Thieves
    by nature, all of them")."""
    groups = words.intersection(GROUP_NOUNS) | words.intersection(_WOMEN)
    if not words.isdisjoint(PEOPLE) or groups:
        groups |= words.intersection(GROUP_ADJECTIVES)
    for start, end in _spans_with(low, groups):
        line = low[start:end]
        wa = _WORD.findall(line)
        if group_hate(wa, line):
            return True
        if len(wa) <= _SHORT and end < len(low):
            stop = low.find("\n", end + 1)
            after = low[end + 1:len(low) if stop < 0 else stop]
            wb = _WORD.findall(after)
            if len(wb) <= _SHORT and group_hate(wa + wb, line + " " + after):
                return True
    cues = words.intersection(HARASSMENT_WORDS)
    if cues and not words.isdisjoint(YOU):
        for start, end in _spans_with(low, cues):
            line = low[start:end]
            if harassment(_WORD.findall(line), line):
                return True
    return False
