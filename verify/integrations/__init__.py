"""Hooks that connect the theory to other people's training code.

`verify.integrations.trl.MarginDynamicsCallback` follows a TRL `DPOTrainer` run step by step against Lemma 4.1.
Nothing is imported here, so that `import verify.integrations` costs nothing and needs neither torch nor TRL.
"""
