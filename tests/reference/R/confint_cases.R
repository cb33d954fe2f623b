# Profile and parametric bootstrap intervals, as lme4's confint (issue 14, item 1):
#   Rscript tests/reference/R/confint_cases.R tests/reference/local
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) out <- "."
m <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
mml <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE)
pastes <- lmer(strength ~ 1 + (1 | batch) + (1 | cask:batch), Pastes, REML = FALSE)
t0 <- proc.time()[["elapsed"]]
boot <- confint(m, method = "boot", nsim = 1000, seed = 1, oldNames = FALSE)
boot_time <- proc.time()[["elapsed"]] - t0
ci <- function(x) list(rows = rownames(x), lower = unname(x[, 1]), upper = unname(x[, 2]))
res <- list(
  boot_sleep_REML = c(ci(boot), nsim = 1000, seconds = boot_time),
  profile_sleep_REML = ci(confint(m, method = "profile", oldNames = FALSE)),
  profile_sleep_ML = ci(confint(mml, method = "profile", oldNames = FALSE)),
  profile_pastes_ML = ci(confint(pastes, method = "profile", oldNames = FALSE)),
  software = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")))
)
writeLines(toJSON(res, digits = 15, auto_unbox = TRUE, pretty = TRUE),
           file.path(out, "confint.json"))

# GLMM profile intervals: confint(glmer fit) (Laplace deviance)
g <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial)
# glmer.nb: profiled with the negative binomial's theta held at its estimate
suppressPackageStartupMessages(library(MASS))
grouseticks$cHEIGHT <- grouseticks$HEIGHT - mean(grouseticks$HEIGHT)
nb <- glmer.nb(TICKS ~ YEAR + cHEIGHT + (1 | BROOD), grouseticks)
glmm <- list(profile_cbpp = ci(confint(g, oldNames = FALSE)),
             profile_ticks_nb = c(ci(confint(nb, oldNames = FALSE)),
                                  nb_theta = getME(nb, "glmer.nb.theta")),
             software = list(R = R.version.string, lme4 = as.character(packageVersion("lme4"))))
writeLines(toJSON(glmm, digits = 15, auto_unbox = TRUE, pretty = TRUE),
           file.path(out, "confint_glmm.json"))
