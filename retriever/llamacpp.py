"""A LangChain chat model over a local GGUF file through llama-cpp-python (optional extra ``gguf``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from .llm import LLMError


class LlamaCppChat(BaseChatModel):
    """A LangChain chat model over a local GGUF file through llama-cpp-python (optional extra ``gguf``)."""

    llama: Any
    max_tokens: int = 512  # per reply, unless the call asks for fewer (the judge: ``judge.JUDGE_TOKENS``)

    @classmethod
    def from_path(cls, path: str, threads: int | None = None) -> LlamaCppChat:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise LLMError(
                "ZHIWEN_LLM_GGUF is set but llama-cpp-python is missing: pip install 'zhiwen[gguf]'"
            ) from None
        return cls(llama=Llama(model_path=str(path), n_ctx=4096, n_threads=threads, verbose=False))

    @property
    def _llm_type(self) -> str:
        return "llama-cpp"

    def _request(self, messages: list[BaseMessage]) -> list[dict[str, str]]:
        roles = {"system": "system", "human": "user", "ai": "assistant"}
        return [{"role": roles[m.type], "content": str(m.content)} for m in messages]

    def _generate(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> ChatResult:
        out = self.llama.create_chat_completion(
            self._request(messages),
            temperature=0,
            max_tokens=kwargs.get("max_tokens", self.max_tokens),
            stop=stop,
        )
        return ChatResult(
            generations=[ChatGeneration(message=AIMessage(out["choices"][0]["message"]["content"]))]
        )

    def _stream(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        for part in self.llama.create_chat_completion(
            self._request(messages),
            temperature=0,
            max_tokens=kwargs.get("max_tokens", self.max_tokens),
            stop=stop,
            stream=True,
        ):
            text = part["choices"][0]["delta"].get("content")
            if text:
                yield ChatGenerationChunk(message=AIMessageChunk(text))
