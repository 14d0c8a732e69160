"""Text normalisation and tokens shared by the refusal classifier and the divergence measure.

Both compare text written in many scripts, so both need the same answer to "are these the same
characters?": compatibility forms folded (NFKC turns full-width punctuation and letters into
their ordinary forms), case folded (``ß`` becomes ``ss``), typographic apostrophes and quotation
marks made plain, and the traditional Chinese forms of common characters folded onto the
simplified ones, so that one phrase table covers both scripts.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["CJK", "fold", "normalize", "token_weight", "tokens"]

# Traditional -> simplified, for the characters refusal phrasing and the usual political
# vocabulary use. Not a converter: characters whose simplified form is ambiguous (乾, 著, 後 in
# names ...) are either left out or folded only where the fold cannot change a match. Position i
# of one string maps to position i of the other.
_TRADITIONAL = (
    "無這個問題對討論話為語發見換關資訊歡範圍評請參還沒學習會幫別說談應該協內們讓試暫時辦實隨樂"
    "盡與從來處務規則違條據確認識詢導體麼樣嗎難當過給經驗風險將後進開門間類僅屬斷專業權歷區爭議"
    "眾決選舉黨國領員憲軍戰獨統灣陸臺謝謹複雜觸裡裏種聽覺點邊觀記錄態圖嚴責負愛義際傳遞構聯絡維護"
    "願準錯誤總雖須稱讀書現達級別製該"
)
_SIMPLIFIED = (
    "无这个问题对讨论话为语发见换关资讯欢范围评请参还没学习会帮别说谈应该协内们让试暂时办实随乐"
    "尽与从来处务规则违条据确认识询导体么样吗难当过给经验风险将后进开门间类仅属断专业权历区争议"
    "众决选举党国领员宪军战独统湾陆台谢谨复杂触里里种听觉点边观记录态图严责负爱义际传递构联络维护"
    "愿准错误总虽须称读书现达级别制该"
)

# Typographic apostrophes become "'", every kind of quotation mark becomes '"' (so one rule can
# find quoted text in any language), and Russian yo becomes ie (texts use either).
_PUNCTUATION = {
    "\u2019": "'",  # right single quotation mark, the usual typographic apostrophe
    "\u2018": "'",
    "\u02bc": "'",  # modifier letter apostrophe
    "\u00b4": "'",
    "`": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',  # German low opening quote
    "\u00ab": '"',  # guillemets (French, Russian, Spanish)
    "\u00bb": '"',
    "\u300c": '"',  # CJK corner brackets
    "\u300d": '"',
    "\u300e": '"',
    "\u300f": '"',
    "\u0451": "\u0435",  # Cyrillic small yo -> ie
    "\u0401": "\u0415",  # Cyrillic capital yo -> ie
}

_FOLD = str.maketrans({**_PUNCTUATION, **dict(zip(_TRADITIONAL, _SIMPLIFIED, strict=True))})

_SPACE = re.compile(r"\s+")
# Markdown emphasis and heading marks carry no words; they would only split phrases.
_MARKUP = re.compile(r"[*_#>~|]+")

# Han ideographs (with extension A and compatibility forms), kana and hangul: scripts written
# without spaces between words, where each character is counted as a token.
CJK = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]",
)
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_TOKEN = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\\W_]+(?:'[^\\W_]+)*",
)

# A CJK character carries less than a word: Chinese takes about 1.7 characters per English word
# for the same content, so a character weighs 0.6 of a token when measuring how much was said.
_CJK_WEIGHT = 0.6


def fold(text: str) -> str:
    """NFKC, then plain apostrophes and quotes, Cyrillic yo -> ie and traditional -> simplified.

    Everything :func:`normalize` does except case folding and white space, so it can be applied
    to regular expressions (case folding would turn a non-word class into a word class).
    """
    return unicodedata.normalize("NFKC", text).translate(_FOLD)


def normalize(text: str) -> str:
    """Return ``text`` folded (:func:`fold`), case folded, without markup, white space collapsed."""
    folded = fold(text).casefold()
    return _SPACE.sub(" ", _MARKUP.sub(" ", folded)).strip()


def tokens(text: str, limit: int) -> list[str]:
    """The first ``limit`` tokens of normalised ``text``: words, and CJK characters one by one."""
    out: list[str] = []
    for match in _TOKEN.finditer(text):
        out.append(match.group())
        if len(out) >= limit:
            break
    return out


def token_weight(text: str) -> float:
    """How much ``text`` says, in words: a word counts 1, a CJK character 0.6."""
    cjk = len(CJK.findall(text))
    words = len(_WORD.findall(CJK.sub(" ", text)))
    return words + _CJK_WEIGHT * cjk
