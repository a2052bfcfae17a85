"""tfds builders of the built-in tasks; importing this registers them."""

from attention_research.data.builders import (digit_scenes, digits, entities, listops, mqar, number_translation,
                                              reports, sentiment_reviews, spoken_digits, story_qa)
from attention_research.data.builders.digit_scenes import DigitScenes
from attention_research.data.builders.digits import Digits
from attention_research.data.builders.entities import Entities
from attention_research.data.builders.listops import Listops
from attention_research.data.builders.mqar import Mqar
from attention_research.data.builders.number_translation import NumberTranslation
from attention_research.data.builders.reports import Reports
from attention_research.data.builders.sentiment_reviews import SentimentReviews
from attention_research.data.builders.spoken_digits import SpokenDigits
from attention_research.data.builders.story_qa import StoryQa
