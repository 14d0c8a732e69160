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
from types import MappingProxyType

__all__ = ["CJK", "fold", "normalize", "token_weight", "tokens"]

# Traditional -> simplified, as (traditional, simplified) pairs of characters, for the
# characters refusal phrasing and the usual political vocabulary use. Not a converter:
# characters whose simplified form depends on the word (乾, 著, 覆 ...) are left out.
_TRADITIONAL_SIMPLIFIED = (
    "無无這这個个問问題题對对討讨論论話话為为語语發发見见換换關关資资訊讯歡欢範范圍围評评請请"
    "參参還还沒没學学習习會会幫帮別别說说談谈應应該该協协內内們们讓让試试暫暂時时辦办實实隨随"
    "樂乐盡尽與与從从來来處处務务規规則则違违條条據据確确認认識识詢询導导體体麼么樣样嗎吗難难"
    "當当過过給给經经驗验風风險险將将後后進进開开門门間间類类僅仅屬属斷断專专業业權权歷历區区"
    "爭争議议眾众決决選选舉举黨党國国領领員员憲宪軍军戰战獨独統统灣湾陸陆臺台謝谢謹谨複复雜杂"
    "觸触裡里裏里種种聽听覺觉點点邊边觀观記记錄录態态圖图嚴严責责負负愛爱義义際际傳传遞递構构"
    "聯联絡络維维護护願愿準准錯错誤误總总雖虽須须稱称讀读書书現现達达級级製制於于輕轻鬆松遺遗"
    "諒谅復复雙双產产氣气電电長长華华萬万頭头顯显響响藝艺術术幾几層层隊队陽阳陳陈齊齐壓压聲声"
    "夠够夢梦婦妇媽妈審审寫写帶带師师廣广張张強强慶庆憂忧懷怀擁拥擊击擔担數数極极標标歐欧歸归"
    "殺杀毀毁況况減减滅灭滿满漢汉濟济災灾營营獄狱獲获環环畫画療疗監监禮礼穩稳競竞節节簡简約约"
    "紀纪純纯細细組组結结絕绝綜综緊紧網网線线編编練练縣县績绩織织繼继續续羅罗聖圣聞闻職职腦脑"
    "蘇苏號号衛卫衝冲補补視视親亲計计訂订訓训訪访設设許许訴诉詞词詳详誠诚誰谁課课調调諾诺證证"
    "譯译變变豐丰財财貨货貧贫費费貿贸質质購购賽赛贊赞贏赢轉转農农連连週周運运遠远適适鄉乡醫医"
    "銀银錢钱鎮镇閉闭離离靜静預预額额顧顾飯饭館馆髮发鬥斗劃划劇剧勝胜勞劳勢势單单團团園园圓圆"
    "尋寻廠厂廢废異异態态戲戏擴扩殘残燈灯犧牺猶犹獻献畢毕盜盗碼码禍祸稅税紅红紛纷緣缘縮缩罷罢"
    "臉脸葉叶蓋盖藥药虛虚襲袭詐诈諮咨謀谋謂谓謊谎講讲譽誉貫贯貴贵賴赖踐践較较輿舆辭辞邏逻郵邮"
    "鄰邻釋释鐵铁鑑鉴闡阐隱隐靈灵頁页項项順顺頓顿顏颜飲饮驚惊驅驱鬧闹麗丽黃黄"
)
_TRADITIONAL = _TRADITIONAL_SIMPLIFIED[0::2]
_SIMPLIFIED = _TRADITIONAL_SIMPLIFIED[1::2]

# Typographic apostrophes become "'", every kind of quotation mark becomes '"' (so one rule can
# find quoted text in any language), and Russian yo becomes ie (texts use either).
_PUNCTUATION = MappingProxyType(
    {
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
)

# Read-only: str.translate accepts any mapping.
_FOLD = MappingProxyType(
    str.maketrans({**_PUNCTUATION, **dict(zip(_TRADITIONAL, _SIMPLIFIED, strict=True))})
)

_SPACE = re.compile(r"\s+")
# Markdown emphasis and heading marks carry no words; they would only split phrases.
_MARKUP = re.compile(r"[*_#>~|]+")

# Han ideographs (with extension A and compatibility forms), kana and hangul: scripts written
# without spaces between words, where each character is counted as a token.
CJK = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]",
)
# Words joined by an apostrophe (typographic in raw text) are one token: "can't", "aujourd'hui".
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
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
    # findall scans all of text: callers cap its length, and the scan runs in C.
    return _TOKEN.findall(text)[:limit]


def token_weight(text: str) -> float:
    """How much ``text`` says, in words: a word counts 1, a CJK character 0.6."""
    cjk = len(CJK.findall(text))
    words = len(_WORD.findall(CJK.sub(" ", text)))
    return words + _CJK_WEIGHT * cjk
