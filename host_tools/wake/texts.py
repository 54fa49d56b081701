# Text material for the held-out evaluation audio (host_tools/wake/data.py): carrier
# templates for positives and for near misses ("adversarial" phrases), the vocabulary that
# near misses of any wake phrase are made from, and plain English sentences for
# general-speech negatives. The sentences are the 1 in HELDOUT_SHARE held out by a stable
# hash; the templates were picked by hand. The rest was the removed trainer's and is gone,
# except the words, which near misses are still searched among.
#
# Everything here is offline and deterministic: the general sentences are the built-in
# everyday sentences below plus sentences harvested from the docstrings of the running
# Python's standard library (parsed with `ast`, never imported, so nothing runs).
import ast
import hashlib
import re
import sys
import sysconfig
from functools import lru_cache
from pathlib import Path

HELDOUT_SHARE = 5  # 1 in 5 of the sentences / near-miss words is held out


def stable_hash(*parts):
    # Same on every machine and Python run (unlike hash()).
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big")


def held_out(text):
    # True for 1 in HELDOUT_SHARE texts (by a stable hash of the normalised words).
    return stable_hash("text", " ".join(words(text))) % HELDOUT_SHARE == 0


_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


def words(text):
    # Lower-case words, punctuation dropped: "Hey, Jarvis!" -> ["hey", "jarvis"].
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def contains_phrase(text, phrase):
    # True if the words of `phrase` occur in `text` consecutively and in order.
    t, p = words(text), words(phrase)
    if not p:
        return False
    return any(t[i:i + len(p)] == p for i in range(len(t) - len(p) + 1))


# ---------------------------------------------------------------------------------------
# Positives: the phrase alone or inside a carrier sentence. "{p}" is the phrase. A
# template ending the phrase with a clause break (",", ".", "?") gives a pause after it;
# one going straight on does not: both occur in real use.

POSITIVE_TEMPLATES = [
    "{p}", "{p}", "{p}?",
    "{p}, how hot is it outside?",
    "{p} open the garage door",
    "hmm, {p}.",
    "right {p}, call mum.",
    "{p}, what's the news today?",
    "{p}, dim the kitchen lights to half.",
    "excuse me {p}, what time is it in Tokyo?",
    "oh {p} never mind",
    "{p}, add eggs to the shopping list.",
    "hey there, {p}, lock the front door.",
    "{p} is it going to rain tomorrow",
]

# Near misses are spoken alone or inside these. "{a}" is the near-miss phrase.
ADVERSARIAL_TEMPLATES = [
    "{a}", "{a}.",
    "{a}, how hot is it outside?",
    "she told me {a} twice.",
    "well, {a} again.",
    "{a} was on television tonight",
    "they kept saying {a} all day",
]

# Hand-picked near misses per phrase, on top of the generated ones (data.near_misses).
CURATED_NEAR_MISSES = {
    "hey jarvis": [
        "hey service", "hey travis", "hey jar", "jarvis", "hey harvest", "a jar is",
        "hey jealous", "charvis", "hey nervous", "hey jars", "hey marvis", "hey jervis",
        "they are this", "hey darvish", "say jarvis", "hey garbage", "hey jam is",
        "hey java", "hey jobs", "hey carvers", "harvest", "hey harvey", "hey jarvie",
    ],
    "okay nabu": ["okay navy", "okay nab", "okay kabu", "okay nemo", "okay noodle", "hey nabu"],
    "alexa": ["alexis", "alex", "a lexus", "election", "alaska", "elixir", "electra"],
    "hey mycroft": ["hey microsoft", "hey my craft", "hey microphone", "my croft", "hey minecraft"],
}

# Onsets, vowels and codas used to make pseudo-words that sound like a phrase word.
ONSETS = ["b", "ch", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "sh", "t",
          "th", "v", "w", "y", "z", "br", "tr", "st", "sp", "cl", "gr", "pl", "dr", "fl", ""]
VOWELS = ["a", "e", "i", "o", "u", "ee", "oo", "ai", "ou", "er", "ar", "or", "ea", "ay"]
CODAS = ["s", "z", "d", "t", "n", "k", "sh", "st", "ss", "ce", "x", "ts", "m", ""]

# Common English words and names (plus the words of the everyday sentences below) are the
# vocabulary searched for real words that sound like a phrase word.
COMMON_WORDS = """
a about above across act actor after again against age agent ago air alarm alive all
allow almost alone along already also always am among amount and angel angle animal
answer any anyway apart apple april are area arm army around arrive art artist as ask
at attack aunt autumn avenue away baby back bad bag bake ball band bank bar barber barn
base basket bath battery be beach bean bear beard beat beautiful because bed bee beef
been beer before begin behind believe bell belt bench best better between bicycle big
bill bird birth biscuit bit black blanket blind block blood blue board boat body boil
bone book boot border born both bottle bottom bowl box boy brain branch brave bread
break breakfast brick bridge bright bring broad brother brown brush bucket build burn
bus business busy but butter button buy by cabbage cabin cake call calm camera camp
can candle canvas cap captain car card care careful carpet carrot carry cart carve
carving case castle cat catch cattle cause ceiling cell centre chain chair chalk chance
change charge charm chart chase cheap check cheese chef cherry chess chest chicken
child chin choice church circle city class clean clear clerk clever climb clock close
cloth cloud club coach coal coast coat coffee coin cold collar colour comb come comfort
common compass cook cool copper copy corn corner cost cotton cough count country court
cousin cover cow crack cream credit crew crime cross crowd crown cry cup cupboard curious
curtain curve cushion cut dance danger dark darling daughter day dead deal dear death
debt decide deep deer degree desk device dial diamond dinner direct dirty dish dive
divide doctor dog doll dollar door double down drama draw drawer dream dress drink
drive drop drum dry duck dust duty each ear early earth east easy eat edge egg eight
either elbow electric elephant else empty end engine enjoy enough enter envelope equal
escape even evening event ever every exact example excuse expert eye face fact fail
fair fairy fall family famous far farm farmer fast fat father fault favour fear
feather feed feel fence fever few field fight film final find fine finger finish fire
first fish fit five flag flame flat floor flour flower fly fog fold follow food foot
for force forest fork form forty forward four fox frame free fresh friend frog from
front fruit full fun furnace future game garage garden garlic gas gate gather general
gentle ghost giant gift girl give glad glass glove go goat gold golf good goose govern
grain grand grape grass gravy gray great green grey ground group grow guard guess
guest guide gun hair half hall hammer hand handle hang happen happy harbour hard
harvest hat hate have hay he head health hear heart heat heavy hedge height hello help
hen her here hero hey hi hide high hill him his history hit hobby hold hole holiday
hollow home honey hope horse hospital hot hotel hour house how human hungry hurry
husband ice idea if ill inch ink insect inside invent iron island it its jacket jam
jar java jaw jazz jealous jelly jersey jet jewel job join joke journey joy judge juice
jump just keep kettle key kick kid kill kind king kiss kitchen kite knee knife knock
know ladder lady lake lamp land language large last late laugh law lawyer lazy lead
leaf learn leather leave left leg lemon lesson letter level library lid lie life lift
light like lily limit line lion lip liquid list listen little live load loaf local
lock long look loose lose lot loud love low luck lunch machine mad magic mail main
make male man many map marble march mark market marry marvel marvelous mask mass master
match matter may meal mean meat medical meet melon memory metal middle might mile milk
mind minute mirror miss mist mix model moment money monkey month moon morning mother
motor mountain mouse mouth move much mud music must nail name narrow nation near neck
need needle nervous nest never new news next nice night nine no noise none noon north
nose note nothing notice now number nurse nut oak ocean of off offer office often oil
old on once one only open orange order other our out oven over own page pain paint
pair palace pan paper parcel parent park part party pass passage past paste path
patient pattern pause pay peace pear pen pencil people pepper person pet phone piano
pick picture piece pig pin pipe place plain plane plant plate play please plenty
pocket poem point police polish pool poor porch post pot potato powder power press
price priest print prison private prize problem promise proper pull pump punch pupil
purple purpose push put quarter queen question quick quiet quite rabbit race radio rain
raise range rare rat rather reach read ready real reason record red remember rent
report rest rice rich ride right ring river road rock roll roof room root rope rose
rough round row royal rub rule run sad safe sail salt same sand save saw say scale
school science scissors sea search season seat second secret see seed seem sell send
sense serious servant serve service seven shade shake shape share sharp sheep shelf
shell shine ship shirt shoe shop short shoulder shout show shut sick side sign silk
silver simple sing sister sit six size skin skirt sky sleep slice slip slow small smell
smile smoke snake snow so soap sock soft soil soldier some son song soon sorry sound
soup south space speak special speed spell spend spoon sport spring square stage stamp
star start station stay steam steel stem step stick still stone stop store storm story
straight strange street strong student study such sugar suit summer sun supper sure
surface surprise swim table tail take talk tall taste tax tea teach team tear tell ten
tennis tent test than thank that the their then there these they thick thin thing
think this those though three throat through throw thumb ticket tide tidy tie tiger
till time tin tiny tired to today toe together tomorrow tongue tonight too tool tooth
top total touch towel tower town toy track trade train travel tree trick trip trouble
truck true trust try tune turn twelve twenty two under until up upon use usual valley
van various vase very view village violin visit voice wait walk wall want war warm
wash watch water wave way we weak wear weather week well west wet what wheel when where
which while whip whistle white who why wide wife wild will win wind window wine wing
winter wire wise wish with woman wonder wood wool word work world worm worry wrist
write wrong yard year yellow yes yet you young zero
harvey jarvie travis jervis mavis davis marvin garvey parvis elvis alvis curtis morris
doris boris chris iris lewis louis francis dennis janice alice willis ellis otis
service nervous jealous purpose surface office practice notice justice promise porpoise
harvest carcass canvas marcus darwin arthur martin marty carla charles charlie
jasper jason jarrod jared james jane jenny jerry jessie jimmy jordan joshua julia justin
nabu navy noble nobody macro micro microsoft minecraft croft crafty mycroft
alex alexis alexa lexus alaska election elixir
""".split()

# Everyday sentences (household, TV, conversation, news). Held out by hash like the
# harvested ones.
EVERYDAY_SENTENCES = """
Could you pass me the salt, please?
I think we should leave before the traffic gets bad.
The kids are playing in the garden again.
Did anyone remember to feed the cat this morning?
Tonight's forecast calls for heavy rain and strong winds.
We need to buy more coffee and some bread.
The meeting has been moved to Thursday afternoon.
Turn it down a little, I'm trying to read.
She said the train was late again today.
Let's watch the rest of the film after dinner.
That was the best pizza I've had in years.
He parked the car right in front of the garage.
The football match ended in a draw last night.
My phone battery is almost empty.
Where did you put the keys to the shed?
Breaking news: the river has burst its banks in the north.
I'll call you back when I get home.
The dishwasher is making that strange noise again.
Scientists have discovered a new species of frog in the rainforest.
Our neighbours are having a party on Saturday.
Can you help me carry these boxes upstairs?
The soup needs a little more pepper.
It's your turn to take out the rubbish.
The museum is closed on Mondays during the winter.
We're running out of milk and eggs.
The concert starts at eight, so we should eat early.
I don't think that's a very good idea.
The weather has been lovely all week.
Please don't leave your shoes in the hallway.
The prime minister will speak to the nation this evening.
He's been working from home since the spring.
Don't forget your umbrella, it looks like rain.
The baby finally fell asleep after lunch.
I can't find the remote control anywhere.
The shop on the corner sells the best bread in town.
Stocks fell sharply after the announcement this morning.
Let me know when the kettle has boiled.
We should paint the bedroom a lighter colour.
My sister is coming to stay for the weekend.
The bus was so crowded that I had to stand.
Has anyone seen my blue jacket?
The chef recommends the fish with roasted vegetables.
A storm is expected to reach the coast by midnight.
I'm going to bed early tonight, I'm exhausted.
The cat knocked a glass off the kitchen table.
They say the new bridge will open next summer.
Remember to water the plants while I'm away.
That documentary about whales was fascinating.
The washing machine has finished, can you hang the clothes out?
I think the printer has run out of ink again.
The team scored twice in the last five minutes.
We could go for a walk along the river later.
The doctor said I should rest for a few days.
Why is the heating on in the middle of summer?
The new restaurant downtown is fully booked until June.
Put the leftovers in the fridge before you go.
The police have closed the main road after an accident.
He always sings in the shower on Sunday mornings.
Our flight leaves at six in the morning.
Could you check whether the back door is locked?
The garden looks wonderful after all that rain.
And now, the weather for the rest of the country.
I told him three times to clean his room.
This recipe needs two cups of flour and a pinch of salt.
The library has a great collection of old maps.
My grandmother used to make the most amazing apple pie.
The children are building a snowman in the park.
After the break, we'll be talking to the author of the book.
You can't park here after six o'clock.
The lights in the hallway keep flickering.
I'd like a cup of tea with milk and no sugar.
We watched the sunset from the top of the hill.
The repair man is coming between ten and twelve.
Did you lock the car when you got out?
The electricity bill was much higher this month.
Welcome back to the show, tonight we have a very special guest.
The dog barks every time the postman comes.
I've been meaning to call my brother all week.
There's a lovely smell coming from the oven.
Please keep your voices down, the baby is sleeping.
Let's order takeaway tonight, I'm too tired to cook.
The match will be shown live on channel four.
The windows need cleaning before the guests arrive.
She's learning to play the piano at school.
We'll have to leave early to get a good seat.
The new series starts next Tuesday at nine.
I put your glasses on the table by the door.
The car needs a new set of tyres before winter.
Traffic is moving slowly on the motorway this morning.
You're listening to the evening news on the radio.
Who wants to play a board game after dinner?
The neighbours' dog got out of the garden again.
I always lose my gloves at the start of winter.
The cinema was almost empty on Wednesday night.
Mum asked if we could visit on Sunday.
Grab a jumper, it's getting cold outside.
Our internet connection has been slow all day.
Please remember to switch off the oven.
The market sells fresh vegetables every Saturday.
He fixed the leaking tap in the bathroom.
Let's have breakfast in the garden today.
The referee blew the whistle for half time.
I heard thunder in the distance a moment ago.
The movie was too long, but the ending was good.
What would you like for your birthday this year?
The plumber said the pipes are very old.
And that brings us to the end of tonight's programme.
We're going camping by the lake next month.
There's a spider in the bath, can you get rid of it?
My alarm didn't go off this morning.
The government announced new rules for schools today.
Can you believe how expensive petrol has become?
The puppy chewed through another pair of slippers.
Let me just finish this email and I'll be right with you.
The cake needs another ten minutes in the oven.
That song always reminds me of our holiday in Spain.
I need to pick up a parcel from the post office.
The kids have a day off school on Friday.
The wind blew the bins over again last night.
Our team has won every game this season.
Please wipe your feet before you come in.
The fridge is humming louder than usual.
Have you seen the new bakery on the high street?
He's been practising the guitar for hours.
The presenter laughed and moved on to the next question.
It's too hot to do anything this afternoon.
The hospital has opened a new children's ward.
I left my book on the train this morning.
Can you turn the music up a little?
The pasta is ready, come and get it while it's hot.
They've finally finished building the new school.
I'm not sure whether to wear a coat or not.
Let's meet at the cafe near the station.
The birds are singing very early these days.
Good evening, and welcome to the quiz.
Somebody left the front gate open again.
I'll make some sandwiches for the journey.
The paint is still wet, so don't touch the door.
Our holiday photos came out really well.
He's watching the cricket in the other room.
The bathroom light bulb needs replacing.
Shall we invite your parents for lunch on Sunday?
The coach was delighted with the team's performance.
The tea has gone cold, I'll make another pot.
There's a long queue at the supermarket today.
I think the clocks go forward this weekend.
The film won three awards at the festival.
The roof leaks whenever it rains heavily.
""".strip().splitlines()


def sentences(full=True, phrase=None):
    # The held-out sentences for general-speech negatives, sorted, none containing
    # `phrase`. full=False: the everyday sentences only (short streams build in seconds).
    pool = list(EVERYDAY_SENTENCES)
    if full:
        pool += stdlib_sentences()
    out = sorted({s for s in pool if held_out(s)})
    if phrase:
        out = [s for s in out if not contains_phrase(s, phrase)]
    return out


_DOC_WORD = re.compile(r"^[A-Za-z][a-z]*(?:'[a-z]+)?$")
_SKIP_PARTS = {"test", "tests", "idlelib", "site-packages", "dist-packages", "lib2to3",
               "turtledemo", "__pycache__", "ensurepip", "pydoc_data", "encodings"}


@lru_cache(maxsize=None)
def stdlib_sentences():
    # Plain English sentences (4-20 words of letters only, capitalised, ending in . ! ?)
    # from the docstrings of the standard library's modules, classes and functions.
    # The modules are parsed, not imported. About 4,800 sentences on CPython 3.11.
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py")
                   if not any(part in _SKIP_PARTS or part.startswith("test_")
                              for part in p.relative_to(root).parts))
    found = set()
    for f in files:
        try:
            tree = ast.parse(f.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    found.update(_doc_sentences(doc))
    return sorted(found)


def _doc_sentences(doc):
    for para in re.split(r"\n\s*\n", doc):
        lines = para.splitlines()
        if any(line.lstrip().startswith((">>>", "...", "-", "*", ":")) for line in lines):
            continue  # examples, lists, field lists
        text = " ".join(line.strip() for line in lines)
        for s in re.split(r"(?<=[.!?])\s+", text):
            s = s.strip()
            if len(s) < 12 or not s[0].isupper() or s[-1] not in ".!?":
                continue
            ws = s[:-1].replace(",", " ").replace(";", " ").split()
            if not 4 <= len(ws) <= 20 or len(ws[-1]) < 2:
                continue
            if all(_DOC_WORD.match(w) for w in ws) and sum(w[0].isupper() for w in ws[1:]) <= 2:
                yield s


def python_signature():
    # What the harvested sentences depend on (part of the data cache key).
    return f"{sys.implementation.name}-{sys.version_info[0]}.{sys.version_info[1]}.{sys.version_info[2]}"
