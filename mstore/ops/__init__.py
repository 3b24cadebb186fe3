"""Operations: each verb is a function taking a Repo; none prints, prompts or exits."""
