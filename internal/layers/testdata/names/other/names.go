package other

const KindFixAgain = "fix.kind"
