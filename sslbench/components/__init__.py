"""Small composable pieces shared by methods: losses, heads, encoders, memories."""
