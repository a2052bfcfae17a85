"""tfds builders of the built-in tasks; importing this registers them."""

from attention_research.data.builders import (compression, digit_scenes, digits, distorted_digits, entities,
                                              fuzzy_recall, listops, memorization, mqar, noisy_recall, number_phrases,
                                              number_translation, reports, scene_detection, scene_segmentation,
                                              scene_vqa, selective_copying, sentiment_reviews, span_qa, spoken_digits,
                                              story_qa)
from attention_research.data.builders.compression import Compression
from attention_research.data.builders.digit_scenes import DigitScenes
from attention_research.data.builders.digits import Digits
from attention_research.data.builders.distorted_digits import DistortedDigits
from attention_research.data.builders.entities import Entities
from attention_research.data.builders.fuzzy_recall import FuzzyRecall
from attention_research.data.builders.listops import Listops
from attention_research.data.builders.memorization import Memorization
from attention_research.data.builders.mqar import Mqar
from attention_research.data.builders.noisy_recall import NoisyRecall
from attention_research.data.builders.number_phrases import NumberPhrases
from attention_research.data.builders.number_translation import NumberTranslation
from attention_research.data.builders.reports import Reports
from attention_research.data.builders.scene_detection import SceneDetection
from attention_research.data.builders.scene_segmentation import SceneSegmentation
from attention_research.data.builders.scene_vqa import SceneVqa
from attention_research.data.builders.selective_copying import SelectiveCopying
from attention_research.data.builders.sentiment_reviews import SentimentReviews
from attention_research.data.builders.span_qa import SpanQa
from attention_research.data.builders.spoken_digits import SpokenDigits
from attention_research.data.builders.story_qa import StoryQa
