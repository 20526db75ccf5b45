"""The paper's method: the realism filter and transfer learning."""
